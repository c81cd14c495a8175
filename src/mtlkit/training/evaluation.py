"""Evaluation and prediction over whole splits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from mtlkit.data import BatchLoader, MultiInputDataset, MultiTaskDataset
from mtlkit.distributed.env import DistContext
from mtlkit.distributed.sampler import shard_bounds
from mtlkit.models import MultiTaskModel
from mtlkit.tasks import Task, compute_metrics


def move(batch_part, device: torch.device):
    if isinstance(batch_part, Mapping):
        return {k: v.to(device, non_blocking=True) for k, v in batch_part.items()}
    return batch_part.to(device, non_blocking=True)


@torch.no_grad()
def collect_outputs(
    model: MultiTaskModel,
    dataset: MultiTaskDataset | MultiInputDataset,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    distributed: DistContext | None = None,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Raw outputs and targets of every task over a whole split, in dataset order.

    With ``distributed``, every rank runs the model on its contiguous share of each split and
    the outputs are gathered (in rank order, i.e. dataset order) on every rank: the metrics then
    come from the whole split, exactly as in one process (no averaging of per-rank metrics).
    """
    model.eval()
    device = torch.device(device)
    outputs: dict[str, list[Tensor]] = {}
    targets: dict[str, list[Tensor]] = {}
    if isinstance(dataset, MultiInputDataset):
        parts = [dataset.task_dataset(name) for name in dataset.task_names]
        multi_input = True
    else:
        parts, multi_input = [dataset], False
    for part in parts:
        if distributed is not None:
            start, end = shard_bounds(len(part), distributed.rank, distributed.world_size)
            part = part.subset(torch.arange(start, end))
        for inputs, target in BatchLoader(part, batch_size, shuffle=False):
            if multi_input:
                inputs = {name: inputs for name in target}
            out = model(move(inputs, device))
            for name, y in target.items():
                outputs.setdefault(name, []).append(out[name].float().cpu())
                targets.setdefault(name, []).append(y)
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
    dataset: MultiTaskDataset | MultiInputDataset,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    target_scaling: Mapping[str, tuple[float, float]] | None = None,
    distributed: DistContext | None = None,
) -> dict[str, dict[str, float]]:
    """``{task: {metric: value, "loss": mean loss}}`` over a split.

    Regression metrics are in the targets' original units (``target_scaling`` undone).
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
        if task.kind == "regression":
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
