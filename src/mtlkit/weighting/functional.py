"""``aggregate(name, jacobian)``: the update a gradient strategy applies, for checks."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from mtlkit.weighting.approx import RepresentationGradients
from mtlkit.weighting.base import GramianWeighting, JacobianAggregator, Weighting
from mtlkit.weighting.registry import make_weighting


def apply_to_jacobian(strategy: Weighting, jacobian: Tensor) -> Tensor:
    """The P-vector that ``strategy`` turns the T × P Jacobian into, with the same code as in
    training (``weights_from_gramian`` then ``Jᵀw``, or ``aggregate``). Advances its state."""
    if isinstance(strategy, RepresentationGradients):
        strategy = strategy.inner
    if isinstance(strategy, GramianWeighting):
        weights = strategy.weights_from_gramian(jacobian @ jacobian.T)
        return weights.to(jacobian.dtype) @ jacobian
    if isinstance(strategy, JacobianAggregator):
        return strategy.aggregate(jacobian)
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
