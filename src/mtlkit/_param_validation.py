"""Parameter constraints declared by each component (scikit-learn's ``_parameter_constraints``).

A component (an architecture, a strategy) declares, next to its constructor,
``_parameter_constraints = {"name": [constraint, ...]}``: a value is valid when it satisfies at
least one constraint of its list. A constraint is an :class:`Interval`, an :class:`Options`,
``None`` (the value ``None``) or a type (``isinstance``; ``bool`` is not a number). The
registries (:func:`mtlkit.models.make_model`, :func:`mtlkit.weighting.make_weighting`) and the
config check options with :func:`validate_params`, so the choices and ranges are stated once.
Light: imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any


@dataclass(frozen=True)
class Interval:
    """Numbers of ``type`` (``Integral`` or ``Real``) from ``low`` to ``high`` (``None``: no end).

    ``closed`` says which ends belong to it: ``both``, ``left``, ``right`` or ``neither``.
    """

    type: type
    low: float | None
    high: float | None
    closed: str = "both"

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.type):
            return False
        if value != value:  # NaN: every comparison is false, so no bound would refuse it
            return False
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (value == self.low and not left)):  # type: ignore[operator]
            return False
        return self.high is None or value < self.high or (value == self.high and right)  # type: ignore[operator]

    def __str__(self) -> str:
        if self.low is None and self.high is None:
            return "an integer" if self.type is Integral else "a number"
        kind = "a value"
        left = ">=" if self.closed in ("both", "left") else ">"
        right = "<=" if self.closed in ("both", "right") else "<"
        if self.high is None:
            return f"{kind} {left} {self.low}"
        if self.low is None:
            return f"{kind} {right} {self.high}"
        brackets = {"both": "[]", "left": "[)", "right": "(]", "neither": "()"}[self.closed]
        return f"{kind} in {brackets[0]}{self.low}, {self.high}{brackets[1]}"


@dataclass(frozen=True)
class Options:
    """One of ``values``."""

    values: tuple[Any, ...]

    def __contains__(self, value: object) -> bool:
        return not isinstance(value, bool) and value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


Constraint = Interval | Options | type | None


def _satisfies(value: Any, constraint: Constraint) -> bool:
    if constraint is None:
        return value is None
    if isinstance(constraint, (Interval, Options)):
        return value in constraint
    if constraint in (Integral, Real) and isinstance(value, bool):
        return False
    return isinstance(value, constraint)


def _describe(constraint: Constraint) -> str:
    if constraint is None:
        return "None"
    if isinstance(constraint, type) and issubclass(constraint, Sequence):
        return "a list"
    return getattr(constraint, "__name__", None) or str(constraint)


def validate_params(
    constraints: Mapping[str, Sequence[Constraint]], params: Mapping[str, Any], where: str
) -> None:
    """Raise ``ValueError`` naming ``where.<name>`` for an unknown or out-of-range parameter."""
    for name, value in params.items():
        if name not in constraints:
            known = ", ".join(sorted(constraints)) or "none"
            raise ValueError(f"{where}: unknown option {name!r}; options: {known}")
        allowed = constraints[name]
        if not any(_satisfies(value, c) for c in allowed):
            expected = " or ".join(_describe(c) for c in allowed)
            raise ValueError(f"{where}.{name}: expected {expected}, got {value!r}")
