"""How the cells of a table are read; the rules live in :mod:`mtlkit.cells` (shared with the
task kinds, which encode target columns). Kept here so ``mtlkit.data.cells`` imports work."""

from mtlkit.cells import (
    FLOAT32_MAX,
    DataError,
    labels,
    legacy_label,
    location,
    na_hint,
    numbers,
    numeric_share,
)

__all__ = [
    "FLOAT32_MAX",
    "DataError",
    "labels",
    "legacy_label",
    "location",
    "na_hint",
    "numbers",
    "numeric_share",
]
