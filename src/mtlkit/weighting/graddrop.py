"""GradDrop: keep, coordinate by coordinate, only the gradients of one sign."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import ClassVar

import torch
from torch import Tensor

from mtlkit._param_validation import Interval
from mtlkit.weighting._random import SeededMixin
from mtlkit.weighting.base import JacobianAggregator


def graddrop_masks(signal: Tensor, uniform: Tensor) -> Tensor:
    """``Mᵢ = [P > U]·[Sᵢ > 0] + [P < U]·[Sᵢ < 0]`` (T × F) with the sign purity
    ``P = ½(1 + Σᵢ Sᵢ / Σᵢ |Sᵢ|)`` of the per-task signals ``S`` (T × F) and ``U ~ Uniform(0, 1)``
    (``uniform``, one per column). Columns where every ``Sᵢ`` is 0 get ``P = ½``."""
    total_abs = signal.abs().sum(dim=0)
    purity = 0.5 * (1.0 + signal.sum(dim=0) / torch.where(total_abs > 0, total_abs, 1.0))
    keep_pos = (purity > uniform) & (signal > 0)
    keep_neg = (purity < uniform) & (signal < 0)
    return (keep_pos | keep_neg).to(signal.dtype)


def graddrop_direction(
    jacobian: Tensor,
    uniform: Tensor,
    leak: float = 0.0,
    features: Sequence[Tensor] | None = None,
) -> Tensor:
    """``d = Σᵢ (ℓ + (1−ℓ) Mᵢ) ⊙ gᵢ`` with the masks of :func:`graddrop_masks`.

    On parameter gradients (``features=None``, as torchjd) the signal is ``Sᵢ = gᵢ``, one mask
    entry per coordinate. On the gradients at the shared activations ``A`` (``features``: those
    tensors, batch first; the columns of ``J`` are their entries) the signal is the batch sum
    ``Sᵢ = Σ_batch sign(A) ⊙ ∇_A Lᵢ``, one purity per feature, and that one mask is applied to
    every sample (Chen et al. 2020, Algorithm 1 with ``f`` the identity; LibMTL's GradDrop);
    ``uniform`` then has one entry per feature.
    """
    if features is None:
        mask = graddrop_masks(jacobian, uniform)
        return ((leak + (1.0 - leak) * mask) * jacobian).sum(dim=0)
    t = jacobian.shape[0]
    blocks = jacobian.split([f.numel() for f in features], dim=1)
    per_sample = [b.reshape(t, f.shape[0], -1) for b, f in zip(blocks, features, strict=True)]
    signs = [f.detach().reshape(1, f.shape[0], -1).sign().to(jacobian.dtype) for f in features]
    signal = torch.cat([(g * s).sum(dim=1) for g, s in zip(per_sample, signs, strict=True)], 1)
    masks = graddrop_masks(signal, uniform).split([g.shape[2] for g in per_sample], dim=1)
    return torch.cat(
        [
            ((leak + (1.0 - leak) * m[:, None, :]) * g).sum(dim=0).reshape(-1)
            for g, m in zip(per_sample, masks, strict=True)
        ]
    )


class GradDrop(SeededMixin, JacobianAggregator):
    """Gradient sign dropout (Chen et al., "Just Pick a Sign: Optimizing Deep Multitask Models
    with Gradient Sign Dropout", NeurIPS 2020, Algorithm 1 lines 10–15, with ``f`` the identity).

    The paper applies it to the gradients at the shared activations: use ``mode="representation"``
    for that (one mask per feature from the batch sum, shared by the batch: ``per_sample_features``
    makes :func:`mtlkit.mtl_backward` pass the representation to ``forward``); by default it
    acts on the shared parameters' gradients (as torchjd's GradDrop).
    ``leak`` is the fraction of every gradient always let through.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "leak": [Interval(Real, 0, 1)],
        "seed": [Interval(Integral, None, None), None],
    }
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    per_sample_features = True

    def __init__(self, num_tasks: int, leak: float = 0.0, seed: int | None = 0) -> None:
        super().__init__()
        if not 0.0 <= leak <= 1.0:
            raise ValueError(f"graddrop.leak must be in [0, 1], got {leak}")
        self.num_tasks = num_tasks
        self.leak = leak
        self._init_generator(seed)

    def forward(self, jacobian: Tensor, features: Sequence[Tensor] | None = None) -> Tensor:
        columns = jacobian.shape[1] if features is None else sum(f[0].numel() for f in features)
        uniform = torch.rand(columns, generator=self.generator, dtype=jacobian.dtype)
        return graddrop_direction(jacobian, uniform.to(jacobian.device), self.leak, features)
