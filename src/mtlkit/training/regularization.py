"""The penalty term λR(θ) of the joint objective Σₜ αₜLₜ + λR(θ)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

PENALTIES = ("none", "l1", "l2", "elasticnet")


def penalty(
    params: Iterable[nn.Parameter], kind: str, strength: float, l1_ratio: float = 0.5
) -> Tensor | None:
    """``λ R(θ)`` with ``R`` = Σ|θ| (l1), ½Σθ² (l2) or ρΣ|θ| + (1−ρ)½Σθ² (elasticnet).

    Returns ``None`` when there is nothing to penalize.
    """
    if kind not in PENALTIES:
        raise ValueError(f"regularization.kind must be one of {', '.join(PENALTIES)}, got {kind!r}")
    params = [p for p in params if p.requires_grad]
    if kind == "none" or strength == 0 or not params:
        return None
    l1 = sum(p.abs().sum() for p in params) if kind in ("l1", "elasticnet") else None
    l2 = sum(p.pow(2).sum() for p in params) / 2 if kind in ("l2", "elasticnet") else None
    if kind == "l1":
        value = l1
    elif kind == "l2":
        value = l2
    else:
        value = l1_ratio * l1 + (1 - l1_ratio) * l2
    return torch.as_tensor(strength) * value
