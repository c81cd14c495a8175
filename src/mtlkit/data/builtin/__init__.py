"""Built-in datasets, all offline, by name."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from mtlkit.data.builtin.digits import load_digits
from mtlkit.data.builtin.mmoe_synthetic import load_mmoe_synthetic
from mtlkit.data.builtin.multimnist import load_multimnist
from mtlkit.data.builtin.penguins import load_penguins
from mtlkit.data.builtin.recsys_synthetic import load_recsys_synthetic
from mtlkit.data.builtin.synthetic import load_synthetic
from mtlkit.data.bundle import DatasetBundle

DATASETS: dict[str, Callable[..., DatasetBundle]] = {
    "multimnist": load_multimnist,
    "penguins": load_penguins,
    "digits": load_digits,
    "synthetic": load_synthetic,
    "mmoe_synthetic": load_mmoe_synthetic,
    "recsys_synthetic": load_recsys_synthetic,
}


def load_dataset(name: str, **options: Any) -> DatasetBundle:
    """Load a built-in dataset; ``options`` go to its loader (e.g. ``seed``, ``n_train``)."""
    if name not in DATASETS:
        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"data.dataset: unknown dataset {name!r}{hint}; choose from {', '.join(DATASETS)}"
        )
    loader = DATASETS[name]
    accepted = inspect.signature(loader).parameters
    for key in options:
        if key not in accepted:
            raise ValueError(
                f"data.options: dataset {name!r} has no option {key!r}; "
                f"valid: {', '.join(accepted)}"
            )
    return loader(**options)


__all__ = ["DATASETS", "load_dataset"]
