"""Helpers shared by the built-in datasets."""

from __future__ import annotations

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
    """Standardize regression targets with training-split statistics."""
    scaled, scaling = dict(targets), {}
    for task in tasks:
        if task.kind != "regression":
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


def tabular_bundle(
    name: str,
    tasks: list[Task],
    features: np.ndarray,
    targets: dict[str, np.ndarray],
    splits: tuple[np.ndarray, np.ndarray, np.ndarray],
    **fields: Any,
) -> DatasetBundle:
    """A bundle of a feature matrix, with regression targets standardized on the train split."""
    train, val, test = splits
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
