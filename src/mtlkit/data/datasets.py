"""Multi-task datasets: one input shared by all tasks, or one dataset per task."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor
from torch.utils.data import Dataset

from mtlkit.tasks.kinds import get_kind


class MultiTaskDataset(Dataset):
    """Single-input data: row ``i`` is ``(inputs[i], {task: targets[task][i]})``.

    Missing labels are NaN (regression) or the task's ``ignore_index`` (classification).
    """

    def __init__(self, inputs: Tensor, targets: Mapping[str, Tensor]) -> None:
        if not targets:
            raise ValueError("a multi-task dataset needs at least one task's targets")
        n = len(inputs)
        for name, y in targets.items():
            if len(y) != n:
                raise ValueError(
                    f"task {name!r}: {len(y)} targets for {n} input rows (lengths must match)"
                )
        self.inputs = inputs
        self.targets = dict(targets)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self.inputs[index], {name: y[index] for name, y in self.targets.items()}

    @property
    def task_names(self) -> list[str]:
        return list(self.targets)

    def subset(self, index: Tensor) -> MultiTaskDataset:
        return MultiTaskDataset(self.inputs[index], {k: v[index] for k, v in self.targets.items()})


class MultiInputDataset(Dataset):
    """Multi-input data: each task has its own ``(inputs, targets)`` of its own length.

    Used when tasks come from different domains. Iterate it with :func:`mtlkit.data.make_loader`,
    whose ``sampling`` rule decides which tasks appear in each batch.
    """

    def __init__(self, datasets: Mapping[str, tuple[Tensor, Tensor]]) -> None:
        if not datasets:
            raise ValueError("a multi-input dataset needs at least one task")
        self.datasets: dict[str, tuple[Tensor, Tensor]] = {}
        shapes = set()
        for name, (x, y) in datasets.items():
            if len(x) != len(y):
                raise ValueError(
                    f"task {name!r}: {len(x)} input rows but {len(y)} targets (lengths must match)"
                )
            if len(x) == 0:
                raise ValueError(f"task {name!r}: no rows")
            shapes.add(tuple(x.shape[1:]))
            self.datasets[name] = (x, y)
        self.same_input_shape = len(shapes) == 1

    @property
    def task_names(self) -> list[str]:
        return list(self.datasets)

    def __len__(self) -> int:
        return sum(len(x) for x, _ in self.datasets.values())

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        for name, (x, y) in self.datasets.items():
            if index < len(x):
                return {name: x[index]}, {name: y[index]}
            index -= len(x)
        raise IndexError(index)

    def task_dataset(self, name: str) -> MultiTaskDataset:
        x, y = self.datasets[name]
        return MultiTaskDataset(x, {name: y})


def as_tensor_targets(values, kind: str) -> Tensor:
    """Targets as the dtype the loss of task kind ``kind`` expects (float for regression, long
    for classes)."""
    return get_kind(kind).targets(values)
