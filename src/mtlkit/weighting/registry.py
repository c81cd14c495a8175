"""Name → factory for every strategy. A new strategy is one file plus one line here.

Every factory is called as ``factory(num_tasks=T, **options)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from mtlkit.weighting.base import Weighting
from mtlkit.weighting.equal import EqualWeighting
from mtlkit.weighting.fixed import FixedWeighting

WEIGHTINGS: dict[str, Callable[..., Weighting]] = {
    "ew": EqualWeighting,
    "fixed": FixedWeighting,
}


def make_weighting(name: str, num_tasks: int, **options: Any) -> Weighting:
    """Build the strategy registered as ``name`` for ``num_tasks`` tasks."""
    key = name.lower()
    if key not in WEIGHTINGS:
        close = difflib.get_close_matches(key, WEIGHTINGS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"weighting: unknown strategy {name!r}{hint}; choose from {', '.join(sorted(WEIGHTINGS))}"
        )
    try:
        return WEIGHTINGS[key](num_tasks=num_tasks, **options)
    except TypeError as err:
        raise ValueError(f"weighting {name!r}: bad options {options}: {err}") from None
