"""Evaluation and prediction over whole splits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from mtlkit.data import BatchLoader, MultiInputDataset, MultiTaskDataset
from mtlkit.distributed.env import DistContext
from mtlkit.distributed.sampler import shard_bounds
from mtlkit.models import MultiTaskModel
from mtlkit.tasks import Task, compute_metrics

EvalData = (
    MultiTaskDataset | MultiInputDataset | Dataset | Iterable[tuple[Any, Mapping[str, Tensor]]]
)
"""A split to score: an mtlkit dataset, a torch ``Dataset`` of ``(input, {task: target})`` rows,
or a loader (any iterable) of ``(inputs, {task: target})`` batches."""


def move(batch_part, device: torch.device):
    if isinstance(batch_part, Mapping):
        return {k: v.to(device, non_blocking=True) for k, v in batch_part.items()}
    return batch_part.to(device, non_blocking=True)


def _batch_outputs(
    model: MultiTaskModel, batches: Iterable, device: torch.device
) -> tuple[dict[str, list[Tensor]], dict[str, list[Tensor]]]:
    outputs: dict[str, list[Tensor]] = {}
    targets: dict[str, list[Tensor]] = {}
    for inputs, target in batches:
        out = model(move(inputs, device))
        for name, y in target.items():
            outputs.setdefault(name, []).append(out[name].float().cpu())
            targets.setdefault(name, []).append(y.cpu())
    return outputs, targets


def _dataset_batches(
    dataset: MultiTaskDataset | MultiInputDataset, batch_size: int, distributed: DistContext | None
) -> Iterator[tuple[Any, Mapping[str, Tensor]]]:
    """The split in order, in batches (each rank: its contiguous share of every task's rows)."""
    multi_input = isinstance(dataset, MultiInputDataset)
    parts = [dataset.task_dataset(n) for n in dataset.task_names] if multi_input else [dataset]
    for part in parts:
        if distributed is not None:
            bounds = shard_bounds(len(part), distributed.rank, distributed.world_size)
            part = part.subset(torch.arange(*bounds))
        for x, y in BatchLoader(part, batch_size, shuffle=False):
            yield ({name: x for name in y} if multi_input else x), y


@torch.no_grad()
def collect_outputs(
    model: MultiTaskModel,
    dataset: EvalData,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    distributed: DistContext | None = None,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Raw outputs and targets of every task over a whole split, in dataset order.

    With ``distributed``, every rank runs the model on its contiguous share of each split and
    the outputs are gathered (in rank order, i.e. dataset order) on every rank: the metrics then
    come from the whole split, exactly as in one process (no averaging of per-rank metrics).
    Other datasets and loaders are read whole by every process.
    """
    model.eval()
    own_data = isinstance(dataset, MultiTaskDataset | MultiInputDataset)
    if own_data:
        batches = _dataset_batches(dataset, batch_size, distributed)
    else:
        batches = (
            DataLoader(dataset, batch_size=batch_size, shuffle=False)
            if isinstance(dataset, Dataset)
            else dataset
        )
        distributed = None
    outputs, targets = _batch_outputs(model, batches, torch.device(device))
    if not outputs and not own_data:
        raise ValueError("evaluation data: no batch (an empty dataset or loader?)")
    if distributed is not None:
        local = (
            {k: torch.cat(v) for k, v in outputs.items()},
            {k: torch.cat(v) for k, v in targets.items()},
        )
        gathered = distributed.all_gather_object(local, "evaluation gather")
        outputs, targets = {}, {}
        for rank_outputs, rank_targets in gathered:
            for k, v in rank_outputs.items():
                outputs.setdefault(k, []).append(v)
            for k, v in rank_targets.items():
                targets.setdefault(k, []).append(v)
    return (
        {k: torch.cat(v) for k, v in outputs.items()},
        {k: torch.cat(v) for k, v in targets.items()},
    )


def unscale(values: Tensor, scaling: tuple[float, float] | None) -> Tensor:
    if scaling is None:
        return values
    mean, std = scaling
    return values * std + mean


def evaluate(
    model: MultiTaskModel,
    tasks: Sequence[Task],
    dataset: EvalData,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    target_scaling: Mapping[str, tuple[float, float]] | None = None,
    distributed: DistContext | None = None,
) -> dict[str, dict[str, float]]:
    """``{task: {metric: value, "loss": mean loss}}`` over a split.

    Metrics of kinds with standardized targets (regression) are in the targets' original units
    (``target_scaling`` undone).
    """
    target_scaling = target_scaling or {}
    outputs, targets = collect_outputs(model, dataset, batch_size, device, distributed)
    results: dict[str, dict[str, float]] = {}
    for task in tasks:
        if task.name not in outputs:
            continue
        out, y = outputs[task.name], targets[task.name]
        loss = float(task.compute_loss(out, y))
        pred = task.predict(out)
        if task.spec.scaled:
            scaling = target_scaling.get(task.name)
            pred, y = unscale(pred, scaling), unscale(y.reshape(pred.shape), scaling)
        prob = task.probabilities(out)
        metrics = compute_metrics(
            task, y.numpy(), pred.numpy(), None if prob is None else prob.numpy()
        )
        results[task.name] = {**metrics, "loss": loss}
    return results


def mean_loss(results: Mapping[str, Mapping[str, float]]) -> float:
    return float(np.mean([r["loss"] for r in results.values()]))
