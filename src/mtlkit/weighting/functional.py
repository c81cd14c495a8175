"""``aggregate(name, jacobian)``: the update a gradient strategy applies, for checks."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from mtlkit.weighting.approx import RepresentationGradients
from mtlkit.weighting.base import GramianWeighting, JacobianAggregator, Weighting
from mtlkit.weighting.registry import make_weighting


def _clipped(direction: Tensor, max_norm: float) -> Tensor:
    """``d`` rescaled to norm ``max_norm`` if longer (``max_norm`` 0: unchanged), as
    :func:`~mtlkit.weighting.mtl_backward` clips the shared update."""
    norm = float(direction.double().norm())
    return direction * (max_norm / norm) if 0 < max_norm < norm else direction


def apply_to_jacobian(strategy: Weighting, jacobian: Tensor) -> Tensor:
    """The P-vector that ``strategy`` turns the T × P Jacobian into, with the same code as in
    training (a Gramian weighting's ``forward`` then ``Jᵀw``, or an aggregator's ``forward``).
    Advances its state."""
    if isinstance(strategy, RepresentationGradients):
        strategy = strategy.inner
    transforms_losses = type(strategy).transform_losses is not Weighting.transform_losses
    if isinstance(strategy, GramianWeighting) and not transforms_losses:
        weights = strategy(jacobian @ jacobian.T)
        return _clipped(weights.to(jacobian.dtype) @ jacobian, strategy.shared_max_norm)
    if isinstance(strategy, JacobianAggregator) and not transforms_losses:
        return _clipped(strategy(jacobian), strategy.shared_max_norm)
    raise ValueError(
        f"aggregate: {type(strategy).__name__} is not a gradient aggregation strategy "
        "(it needs the losses, not only the Jacobian)"
    )


def aggregate(name: str, jacobian: Tensor, **options: Any) -> Tensor:
    """Combine a T × P Jacobian into the P-vector that training with strategy ``name`` applies
    to the shared parameters. Random strategies take ``seed`` (default 0); stateful ones
    start from their initial state.

    >>> import torch
    >>> aggregate("mgda", torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    tensor([0.5000, 0.5000])
    """
    if jacobian.dim() != 2:
        raise ValueError(f"aggregate: expected a T × P matrix, got shape {tuple(jacobian.shape)}")
    strategy = make_weighting(name, jacobian.shape[0], **options)
    return apply_to_jacobian(strategy, jacobian)
