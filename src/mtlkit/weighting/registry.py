"""Name → factory for every strategy. A new strategy is one file plus one line here.

Every factory is called as ``factory(num_tasks=T, **options)``. :func:`make_weighting` also
accepts the engine-level options ``mode`` (``"exact"`` or ``"representation"``) and ``every``
(recompute the weights every k steps), which wrap any gradient strategy (see
:mod:`mtlkit.weighting.approx`).
"""

from __future__ import annotations

import difflib
from numbers import Integral
from typing import Any, ClassVar

from mtlkit._param_validation import Interval, Options, validate_params
from mtlkit.weighting.aligned_mtl import AlignedMTL
from mtlkit.weighting.approx import EveryK, RepresentationGradients
from mtlkit.weighting.base import GramianWeighting, JacobianAggregator, Weighting
from mtlkit.weighting.cagrad import CAGrad
from mtlkit.weighting.db_mtl import DBMTL
from mtlkit.weighting.dualproj import DualProj
from mtlkit.weighting.dwa import DWA
from mtlkit.weighting.equal import EqualWeighting
from mtlkit.weighting.famo import FAMO
from mtlkit.weighting.fixed import FixedWeighting
from mtlkit.weighting.gls import GeometricLoss
from mtlkit.weighting.graddrop import GradDrop
from mtlkit.weighting.gradnorm import GradNorm
from mtlkit.weighting.gradvac import GradVac
from mtlkit.weighting.imtlg import IMTLG
from mtlkit.weighting.mean import Mean, Sum
from mtlkit.weighting.mgda import MGDA
from mtlkit.weighting.nash_mtl import NashMTL
from mtlkit.weighting.pcgrad import PCGrad
from mtlkit.weighting.rlw import RandomLossWeighting
from mtlkit.weighting.upgrad import UPGrad
from mtlkit.weighting.uw import UncertaintyWeighting


class MGDAUB(RepresentationGradients):
    """MGDA-UB (Sener & Koltun, 2018): MGDA on the gradients w.r.t. the shared representation."""

    _parameter_constraints: ClassVar[dict[str, list]] = MGDA._parameter_constraints

    def __init__(self, num_tasks: int, **options: Any) -> None:
        super().__init__(MGDA(num_tasks, **options))


WEIGHTINGS: dict[str, type[Weighting]] = {
    # loss weighting
    "ew": EqualWeighting,
    "fixed": FixedWeighting,
    "uw": UncertaintyWeighting,
    "dwa": DWA,
    "gradnorm": GradNorm,
    "rlw": RandomLossWeighting,
    "gls": GeometricLoss,
    "famo": FAMO,
    "db_mtl": DBMTL,
    # gradient aggregation
    "mean": Mean,
    "sum": Sum,
    "mgda": MGDA,
    "mgda_ub": MGDAUB,
    "pcgrad": PCGrad,
    "gradvac": GradVac,
    "graddrop": GradDrop,
    "cagrad": CAGrad,
    "imtl_g": IMTLG,
    "nash_mtl": NashMTL,
    "aligned_mtl": AlignedMTL,
    "upgrad": UPGrad,
    "dualproj": DualProj,
}

AGGREGATIONS: tuple[str, ...] = tuple(
    name
    for name, factory in WEIGHTINGS.items()
    if issubclass(factory, RepresentationGradients)
    or (
        issubclass(factory, GramianWeighting | JacobianAggregator)
        and factory.transform_losses is Weighting.transform_losses
    )
)
"""The gradient aggregation strategies: those :func:`mtlkit.weighting.aggregate` accepts (a
function of the Jacobian of the losses themselves, so DB-MTL's log-losses are not one)."""

MODES = ("exact", "representation")
ENGINE_CONSTRAINTS: dict[str, list] = {
    "mode": [Options(MODES)],
    "every": [Interval(Integral, 1, None)],
}
"""The options every strategy accepts (see :func:`make_weighting`)."""


def strategy_constraints(name: str) -> dict[str, list]:
    """The allowed ``weighting.options`` of the strategy ``name``: its own and the engine's."""
    return {**WEIGHTINGS[name.lower()]._parameter_constraints, **ENGINE_CONSTRAINTS}  # type: ignore[attr-defined]


def check_strategy_options(name: str, options: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the strategy and option for an unknown or bad option.

    An unknown ``name`` is left to :func:`make_weighting` (which suggests a close name).
    """
    if name.lower() in WEIGHTINGS:
        validate_params(
            strategy_constraints(name), options, f"weighting {name!r}: weighting.options"
        )


def make_weighting(
    name: str, num_tasks: int, mode: str = "exact", every: int = 1, **options: Any
) -> Weighting:
    """Build the strategy registered as ``name`` for ``num_tasks`` tasks.

    ``mode="representation"`` uses gradients w.r.t. the shared representation; ``every=k``
    recomputes the weights every k steps. Both need a gradient strategy and raise otherwise.
    """
    key = name.lower()
    if key not in WEIGHTINGS:
        close = difflib.get_close_matches(key, WEIGHTINGS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        choices = ", ".join(sorted(WEIGHTINGS))
        raise ValueError(f"weighting: unknown strategy {name!r}{hint}; choose from {choices}")
    check_strategy_options(name, {"mode": mode, "every": every, **options})
    try:
        strategy = WEIGHTINGS[key](num_tasks=num_tasks, **options)
    except TypeError as err:
        raise ValueError(f"weighting {name!r}: bad options {options}: {err}") from None
    if mode == "representation" and not isinstance(strategy, RepresentationGradients):
        strategy = RepresentationGradients(strategy)
    if int(every) != 1:
        strategy = EveryK(strategy, int(every), num_tasks)
    return strategy
