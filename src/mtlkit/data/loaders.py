"""Batching for both data modes.

A batch is ``(inputs, targets)`` where ``targets`` is ``{task: tensor}`` and ``inputs`` is a tensor
(single-input data) or ``{task: tensor}`` (multi-input data).

Sampling rules for multi-input data (``sampling=``):

- ``"joint"``: every step holds one batch of *every* task; an epoch lasts as many steps as the
  largest task needs, and smaller tasks are cycled (reshuffled each pass).
- ``"round_robin"``: every step holds one task, taken in turn; each task's data is seen once per
  epoch, so tasks with more data keep going after the smaller ones are exhausted.
- ``"proportional"``: every step holds one task drawn with probability proportional to its size;
  an epoch has as many steps as all tasks' batches together.

Data-parallel training (``world_size > 1``): every rank's loader draws the same global batches
(same seed, same generator) and yields only its contiguous part of each one — of the single
batch, or of every task's batch for multi-input data (see :mod:`mtlkit.distributed.sampler`).
``batch_size`` stays the *global* batch size, so a config means the same thing for any number
of processes, and the number of steps per epoch does not depend on it either.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from mtlkit.data.datasets import MultiInputDataset, MultiTaskDataset
from mtlkit.distributed.sampler import shard_slice

Batch = tuple[Tensor | dict[str, Tensor], dict[str, Tensor]]
SAMPLING_RULES = ("joint", "round_robin", "proportional")


class BatchLoader:
    """Yields :data:`Batch` es from in-memory tensors by index slicing (no per-row collation).

    Shuffling is driven by its own ``torch.Generator``. :meth:`state_dict` saves its state at
    the start of the current epoch and the number of batches yielded since; a loader given that
    state draws the epoch's order again, skips those batches and continues with the same ones
    (a run resumed mid-epoch sees the batches it would have seen).
    """

    def __init__(
        self,
        dataset: MultiTaskDataset | MultiInputDataset,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        sampling: str = "joint",
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        if sampling not in SAMPLING_RULES:
            raise ValueError(
                f"data.sampling must be one of {', '.join(SAMPLING_RULES)}, got {sampling!r}"
            )
        if sampling == "joint" and drop_last and isinstance(dataset, MultiInputDataset):
            for name, (x, _) in dataset.datasets.items():
                if len(x) < batch_size:  # no full batch of this task for joint steps
                    raise ValueError(
                        f"task {name!r}: {len(x)} rows, fewer than batch_size {batch_size}: "
                        "joint sampling with drop_last has no batch of it"
                    )
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.sampling = sampling
        self.drop_last = drop_last
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside a world of {world_size} processes")
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(seed)
        self._epoch_start: Tensor | None = None  # generator state when this epoch began
        self._yielded = 0  # batches of this epoch yielded so far
        self._skip = 0  # batches the next iteration skips (set by load_state_dict)

    def _order(self, n: int) -> Tensor:
        return torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)

    def _num_batches(self, n: int) -> int:
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __len__(self) -> int:
        if isinstance(self.dataset, MultiTaskDataset):
            return self._num_batches(len(self.dataset))
        sizes = [self._num_batches(len(x)) for x, _ in self.dataset.datasets.values()]
        return max(sizes) if self.sampling == "joint" else sum(sizes)

    def __iter__(self) -> Iterator[Batch]:
        skip, self._skip = self._skip, 0  # > 0 after load_state_dict of a mid-epoch state
        self._epoch_start, self._yielded = self.generator.get_state(), skip
        if isinstance(self.dataset, MultiTaskDataset):
            batches = self._single(skip)
        else:  # replayed: the same draws of the generator, batches dropped
            batches = self._joint() if self.sampling == "joint" else self._one_task_per_step()
            for _ in range(skip):
                next(batches)
        for batch in batches:
            self._yielded += 1
            yield batch
        self._epoch_start, self._yielded = None, 0

    def _slices(self, order: Tensor, skip: int = 0) -> Iterator[Tensor]:
        for b in range(skip, self._num_batches(len(order))):
            index = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield shard_slice(index, self.rank, self.world_size)

    def _single(self, skip: int = 0) -> Iterator[Batch]:
        ds = self.dataset
        for idx in self._slices(self._order(len(ds)), skip):
            yield ds.inputs[idx], {name: y[idx] for name, y in ds.targets.items()}

    def _task_batches(self, name: str) -> Iterator[Batch]:
        x, y = self.dataset.datasets[name]
        for idx in self._slices(self._order(len(x))):
            yield {name: x[idx]}, {name: y[idx]}

    def _joint(self) -> Iterator[Batch]:
        names = self.dataset.task_names
        streams = {name: self._task_batches(name) for name in names}
        for _ in range(len(self)):
            inputs, targets = {}, {}
            for name in names:
                batch = next(streams[name], None)
                if batch is None:
                    streams[name] = self._task_batches(name)
                    batch = next(streams[name])
                inputs.update(batch[0])
                targets.update(batch[1])
            yield inputs, targets

    def _one_task_per_step(self) -> Iterator[Batch]:
        names = self.dataset.task_names
        remaining = {name: self._num_batches(len(self.dataset.datasets[name][0])) for name in names}
        streams = {name: self._task_batches(name) for name in names}
        turn = 0
        while any(remaining.values()):
            if self.sampling == "round_robin":
                while remaining[names[turn % len(names)]] == 0:
                    turn += 1
                name = names[turn % len(names)]
                turn += 1
            else:
                counts = torch.tensor([remaining[n] for n in names], dtype=torch.float)
                name = names[int(torch.multinomial(counts, 1, generator=self.generator))]
            remaining[name] -= 1
            yield next(streams[name])

    def state_dict(self) -> dict[str, Any]:
        """``generator``: its state now, or at the start of the epoch in progress; ``batches``:
        the batches of that epoch yielded so far (0 between epochs)."""
        in_epoch = self._epoch_start is not None
        return {
            "generator": self._epoch_start if in_epoch else self.generator.get_state(),
            "batches": self._yielded,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue where :meth:`state_dict` was taken: the next iteration replays the epoch's
        draws and skips the batches already yielded."""
        self.generator.set_state(state["generator"])
        batches = int(state.get("batches", 0))  # states saved before mid-epoch resume lack it
        self._epoch_start = state["generator"].clone() if batches else None
        self._yielded = self._skip = batches


def make_loader(
    dataset: MultiTaskDataset | MultiInputDataset,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    sampling: str = "joint",
    rank: int = 0,
    world_size: int = 1,
) -> BatchLoader:
    """A :class:`BatchLoader` over ``dataset`` (see the module docstring for ``sampling``)."""
    return BatchLoader(
        dataset,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        sampling=sampling,
        rank=rank,
        world_size=world_size,
    )
