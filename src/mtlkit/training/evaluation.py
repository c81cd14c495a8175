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


class _RowBuffer:
    """Rows appended batch by batch into one tensor, allocated once when the number of rows is
    known (``capacity``), otherwise doubled when full.

    Keeping every batch's tensors until the end of a split instead interleaves thousands of
    small long-lived blocks with a streamed reader's per-unit temporaries: the allocator then
    cannot reuse the freed units' space and a process's memory grows with the rows of the
    split (issue #16). A batch is copied, so no view of a reader's unit outlives it.
    """

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity
        self.rows = 0
        self.data: Tensor | None = None

    def append(self, batch: Tensor) -> None:
        end = self.rows + len(batch)
        if self.data is None or end > len(self.data):
            held = 0 if self.data is None else len(self.data)
            size = max(end, 2 * held) if held else max(end, self.capacity or 0)
            grown = batch.new_empty((size, *batch.shape[1:]), device="cpu")
            if self.data is not None:
                grown[: self.rows] = self.data[: self.rows]
            self.data = grown
        self.data[self.rows : end] = batch
        self.rows = end

    def tensor(self) -> Tensor:
        """The rows appended, in a tensor of their own size (no spare capacity to pickle)."""
        assert self.data is not None
        return self.data if self.rows == len(self.data) else self.data[: self.rows].clone()


def _batch_outputs(
    model: MultiTaskModel, batches: Iterable, device: torch.device, rows: int | None = None
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Every task's outputs (float) and targets over ``batches``, in order; ``rows``: the rows
    they hold, if known (one allocation per task and tensor)."""
    outputs: dict[str, _RowBuffer] = {}
    targets: dict[str, _RowBuffer] = {}
    for inputs, target in batches:
        out = model(move(inputs, device))
        for name, y in target.items():
            outputs.setdefault(name, _RowBuffer(rows)).append(out[name].float())
            targets.setdefault(name, _RowBuffer(rows)).append(y)
    return (
        {k: v.tensor() for k, v in outputs.items()},
        {k: v.tensor() for k, v in targets.items()},
    )


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
    rows = None
    if own_data:
        batches = _dataset_batches(dataset, batch_size, distributed)
        if isinstance(dataset, MultiTaskDataset):
            rows = len(dataset)
            if distributed is not None:
                start, end = shard_bounds(rows, distributed.rank, distributed.world_size)
                rows = end - start
    else:
        if isinstance(dataset, Dataset):
            rows = len(dataset) if hasattr(dataset, "__len__") else None
            batches = DataLoader(dataset, batch_size=batch_size, shuffle=False)
        else:
            rows, batches = getattr(dataset, "num_rows", None), dataset  # StreamLoader's
        distributed = None
    outputs, targets = _batch_outputs(model, batches, torch.device(device), rows)
    if not outputs and not own_data:
        raise ValueError("evaluation data: no batch (an empty dataset or loader?)")
    if distributed is None:
        return outputs, targets
    gathered = distributed.all_gather_object((outputs, targets), "evaluation gather")
    return _concat([o for o, _ in gathered]), _concat([t for _, t in gathered])


def _concat(parts: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Each task's tensors of the ranks that hold it, in rank order."""
    tensors: dict[str, list[Tensor]] = {}
    for part in parts:
        for name, tensor in part.items():
            tensors.setdefault(name, []).append(tensor)
    return {name: torch.cat(values) for name, values in tensors.items()}


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
