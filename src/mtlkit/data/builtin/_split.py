"""Helpers shared by the built-in datasets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from mtlkit.data.bundle import DatasetBundle
from mtlkit.data.datasets import MultiTaskDataset, as_tensor_targets
from mtlkit.tasks import Task


def split_indices(
    n: int, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fixed random train/val/test partition of ``range(n)``."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


def standardize_targets(
    tasks: list[Task], targets: dict[str, np.ndarray], train_index: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, tuple[float, float]]]:
    """Standardize the targets of scaled kinds (regression) with training-split statistics."""
    scaled, scaling = dict(targets), {}
    for task in tasks:
        if not task.spec.scaled:
            continue
        y = targets[task.name].astype(float)
        train = y[train_index]
        mean, std = float(np.nanmean(train)), float(np.nanstd(train)) or 1.0
        scaled[task.name] = (y - mean) / std
        scaling[task.name] = (mean, std)
    return scaled, scaling


def make_split(
    features: np.ndarray, targets: dict[str, np.ndarray], tasks: list[Task], index: np.ndarray
) -> MultiTaskDataset:
    kinds = {t.name: t.kind for t in tasks}
    return MultiTaskDataset(
        torch.as_tensor(features[index], dtype=torch.float32),
        {name: as_tensor_targets(y[index], kinds[name]) for name, y in targets.items()},
    )


def keep_labels(
    name: str,
    tasks: list[Task],
    targets: dict[str, np.ndarray],
    train_index: np.ndarray,
    labelled: Mapping[str, int],
    seed: int,
) -> dict[str, np.ndarray]:
    """Mask all but ``labelled[task]`` random training labels of each listed task.

    Masked labels become the kind's ``missing_label`` (``IGNORE_INDEX``; NaN for regression);
    the validation and test labels are kept. Simulates a task with few labels next to tasks
    with many.
    """
    kinds = {t.name: t.spec for t in tasks}
    masked = dict(targets)
    rng = np.random.default_rng([seed, 1])
    for task, count in labelled.items():
        if task not in kinds:
            raise ValueError(
                f"{name}: labelled names unknown task {task!r}; tasks are {', '.join(kinds)}"
            )
        y = targets[task]
        kind = kinds[task]
        present = train_index[~kind.is_missing(y[train_index])]
        if not isinstance(count, int) or not 1 <= count <= len(present):
            raise ValueError(
                f"{name}: labelled[{task!r}] must be an integer in [1, {len(present)}] "
                f"(the task's labelled training rows), got {count!r}"
            )
        drop = rng.permutation(present)[count:]
        y = y.astype(np.result_type(y.dtype, type(kind.missing_label)))  # a copy
        y[drop] = kind.missing_label
        masked[task] = y
    return masked


def tabular_bundle(
    name: str,
    tasks: list[Task],
    features: np.ndarray,
    targets: dict[str, np.ndarray],
    splits: tuple[np.ndarray, np.ndarray, np.ndarray],
    labelled: Mapping[str, int] | None = None,
    seed: int = 0,
    **fields: Any,
) -> DatasetBundle:
    """A bundle of a feature matrix, with regression targets standardized on the train split;
    ``labelled`` keeps only that many training labels of the tasks it names (see
    :func:`keep_labels`)."""
    train, val, test = splits
    if labelled:
        targets = keep_labels(name, tasks, targets, train, labelled, seed)
    targets, scaling = standardize_targets(tasks, targets, train)
    return DatasetBundle(
        name=name,
        tasks=tasks,
        train=make_split(features, targets, tasks, train),
        val=make_split(features, targets, tasks, val),
        test=make_split(features, targets, tasks, test),
        input_shape=(features.shape[1],),
        default_encoder="mlp",
        target_scaling=scaling,
        **fields,
    )
