"""The penalty term λR(θ) of the joint objective Σₜ αₜLₜ + λR(θ)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

PENALTIES: dict[str, Callable[[float], tuple[float, float]]] = {
    "none": lambda l1_ratio: (0.0, 0.0),
    "l1": lambda l1_ratio: (1.0, 0.0),
    "l2": lambda l1_ratio: (0.0, 1.0),
    "elasticnet": lambda l1_ratio: (l1_ratio, 1.0 - l1_ratio),
}
"""Each penalty as its shares ``(a, b)`` of ``R(θ) = a Σ|θ| + b ½Σθ²`` given the mixing
``l1_ratio`` ρ: l1 ``(1, 0)``, l2 ``(0, 1)``, elasticnet ``(ρ, 1 − ρ)``, none ``(0, 0)``."""


def penalty(
    params: Iterable[nn.Parameter], kind: str, strength: float, l1_ratio: float = 0.5
) -> Tensor | None:
    """``λ R(θ)`` with ``R(θ) = a Σ|θ| + b ½Σθ²`` and ``(a, b)`` the shares of ``kind`` in
    :data:`PENALTIES`: Σ|θ| (l1), ½Σθ² (l2) or ρΣ|θ| + (1−ρ)½Σθ² (elasticnet).

    Returns ``None`` when there is nothing to penalize.
    """
    shares = PENALTIES.get(kind)
    if shares is None:
        raise ValueError(f"regularization.kind must be one of {', '.join(PENALTIES)}, got {kind!r}")
    l1_share, l2_share = shares(l1_ratio)
    params = [p for p in params if p.requires_grad]
    if (l1_share == 0 and l2_share == 0) or strength == 0 or not params:
        return None
    terms = []
    if l1_share:
        terms.append(l1_share * sum(p.abs().sum() for p in params))
    if l2_share:
        terms.append(l2_share * sum(p.pow(2).sum() for p in params) / 2)
    return torch.as_tensor(strength) * sum(terms)
