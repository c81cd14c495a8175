"""Balancing the tasks: loss weighting and gradient aggregation strategies.

Build one by name with :func:`make_weighting` (see :data:`WEIGHTINGS`); apply it from any
training loop with :func:`mtl_backward`; check what a gradient strategy does to a Jacobian with
:func:`aggregate`.
"""

from mtlkit.weighting.approx import EveryK, RepresentationGradients
from mtlkit.weighting.backward import mtl_backward
from mtlkit.weighting.base import (
    GramianWeighting,
    JacobianAggregator,
    LossWeighting,
    Weighting,
)
from mtlkit.weighting.engine import GradientEngine
from mtlkit.weighting.functional import aggregate
from mtlkit.weighting.registry import AGGREGATIONS, WEIGHTINGS, make_weighting

__all__ = [
    "AGGREGATIONS",
    "WEIGHTINGS",
    "EveryK",
    "GradientEngine",
    "GramianWeighting",
    "JacobianAggregator",
    "LossWeighting",
    "RepresentationGradients",
    "Weighting",
    "aggregate",
    "make_weighting",
    "mtl_backward",
]
