"""K-fold cross-validation splits of a dataset bundle, for ``mtlkit tune --cv-folds K``."""

from __future__ import annotations

from dataclasses import replace
from numbers import Integral

import torch
from torch import Tensor

from mtlkit._param_validation import Constraint, Interval, validate_params
from mtlkit.config import ConfigError
from mtlkit.data import DatasetBundle, MultiInputDataset, MultiTaskDataset

KFOLD_CONSTRAINTS: dict[str, list[Constraint]] = {"folds": [Interval(Integral, 2, None)]}
"""The range of :func:`kfold_bundles`' ``folds`` (``tune.cv_folds`` reads it)."""


def fold_indices(n: int, folds: int, seed: int) -> list[Tensor]:
    """A seeded random partition of ``range(n)`` into ``folds`` parts of sizes differing by ≤ 1."""
    generator = torch.Generator().manual_seed(seed)
    return list(torch.randperm(n, generator=generator).tensor_split(folds))


def _pool(train: MultiTaskDataset, val: MultiTaskDataset) -> MultiTaskDataset:
    targets = {k: torch.cat([train.targets[k], val.targets[k]]) for k in train.targets}
    return MultiTaskDataset(torch.cat([train.inputs, val.inputs]), targets)


def _complement(parts: list[Tensor], k: int) -> Tensor:
    return torch.cat([p for i, p in enumerate(parts) if i != k])


def kfold_bundles(bundle: DatasetBundle, folds: int, seed: int = 0) -> list[DatasetBundle]:
    """``folds`` copies of ``bundle``: copy k trains on train ∪ val less fold k, validates on k.

    The test split is left as it is; tuning never reads it. Preprocessing and target scaling
    stay those fitted on the original training split. Multi-input data is folded task by task.
    """
    try:
        validate_params(KFOLD_CONSTRAINTS, {"folds": folds}, "kfold_bundles")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    train, val = bundle.train, bundle.val
    if isinstance(train, MultiTaskDataset) and isinstance(val, MultiTaskDataset):
        pool = _pool(train, val)
        if len(pool) < folds:
            raise ConfigError(f"tune.cv_folds: {folds} folds for only {len(pool)} rows")
        parts = fold_indices(len(pool), folds, seed)
        return [
            replace(bundle, train=pool.subset(_complement(parts, k)), val=pool.subset(parts[k]))
            for k in range(folds)
        ]
    if isinstance(train, MultiInputDataset) and isinstance(val, MultiInputDataset):
        pools = {
            name: _pool(train.task_dataset(name), val.task_dataset(name))
            for name in train.task_names
        }
        split = {}
        for name, pool in pools.items():
            if len(pool) < folds:
                raise ConfigError(
                    f"tune.cv_folds: {folds} folds for only {len(pool)} rows of task {name!r}"
                )
            split[name] = fold_indices(len(pool), folds, seed)

        def part(k: int, held_out: bool) -> MultiInputDataset:
            datasets = {}
            for name, pool in pools.items():
                index = split[name][k] if held_out else _complement(split[name], k)
                datasets[name] = (pool.inputs[index], pool.targets[name][index])
            return MultiInputDataset(datasets)

        return [replace(bundle, train=part(k, False), val=part(k, True)) for k in range(folds)]
    raise ConfigError("tune.cv_folds: the train and validation splits are of different kinds")
