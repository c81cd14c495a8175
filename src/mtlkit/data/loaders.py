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
from collections.abc import Iterator

import torch
from torch import Tensor

from mtlkit.data.datasets import MultiInputDataset, MultiTaskDataset
from mtlkit.distributed.sampler import shard_slice

Batch = tuple[Tensor | dict[str, Tensor], dict[str, Tensor]]
SAMPLING_RULES = ("joint", "round_robin", "proportional")


class BatchLoader:
    """Yields :data:`Batch` es from in-memory tensors by index slicing (no per-row collation).

    Shuffling is driven by its own ``torch.Generator``, whose state is saved by
    :meth:`state_dict` so that a resumed run sees the same batches.
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
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.sampling = sampling
        self.drop_last = drop_last
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside a world of {world_size} processes")
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(seed)

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
        if isinstance(self.dataset, MultiTaskDataset):
            yield from self._single()
        elif self.sampling == "joint":
            yield from self._joint()
        else:
            yield from self._one_task_per_step()

    def _slices(self, order: Tensor) -> Iterator[Tensor]:
        for b in range(self._num_batches(len(order))):
            index = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield shard_slice(index, self.rank, self.world_size)

    def _single(self) -> Iterator[Batch]:
        ds = self.dataset
        for idx in self._slices(self._order(len(ds))):
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

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


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
