"""Balancing the tasks: loss weighting and gradient aggregation strategies."""

from mtlkit.weighting.base import (
    GramianWeighting,
    JacobianAggregator,
    LossWeighting,
    StepContext,
    Weighting,
)
from mtlkit.weighting.engine import GradientEngine
from mtlkit.weighting.registry import WEIGHTINGS, make_weighting

__all__ = [
    "WEIGHTINGS",
    "GradientEngine",
    "GramianWeighting",
    "JacobianAggregator",
    "LossWeighting",
    "StepContext",
    "Weighting",
    "make_weighting",
]
