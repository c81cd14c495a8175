"""scikit-learn's 8×8 handwritten digits: digit class, parity and "digit ≥ 5".

1,797 images as 64 pixel features scaled to [0, 1]. Split 60/20/20, fixed by ``seed``.
``labelled={"digit": 50}`` keeps only 50 random training labels of that task (the others are
masked; validation and test labels are kept): a task with few labels beside tasks with many.
"""

from __future__ import annotations

from collections.abc import Mapping

from mtlkit.data.builtin._split import split_indices, tabular_bundle
from mtlkit.data.bundle import DatasetBundle
from mtlkit.tasks import Task


def load_digits(seed: int = 0, labelled: Mapping[str, int] | None = None) -> DatasetBundle:
    from sklearn.datasets import load_digits as sklearn_digits

    data = sklearn_digits()
    features = (data.data / 16.0).astype("float32")
    digit = data.target
    tasks = [
        Task("digit", "multiclass", 10),
        Task("parity", "binary", class_names=["even", "odd"]),
        Task("ge5", "binary", class_names=["<5", ">=5"]),
    ]
    targets = {"digit": digit, "parity": digit % 2, "ge5": (digit >= 5).astype(int)}
    return tabular_bundle(
        "digits",
        tasks,
        features,
        targets,
        split_indices(len(digit), 0.2, 0.2, seed=seed),
        labelled=labelled,
        seed=seed,
        description="sklearn 8x8 digits; tasks: digit, parity, digit >= 5",
    )
