"""A dataset ready for training: its tasks and fixed train/validation/test splits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mtlkit.data.datasets import MultiInputDataset, MultiTaskDataset
from mtlkit.data.tabular import TabularPreprocessor
from mtlkit.tasks import Task
from mtlkit.tasks.task import NamedTasks


@dataclass
class DatasetBundle(NamedTasks):
    """Tasks plus train/val/test splits, and what is needed to apply a model to new rows.

    ``target_scaling[task] = (mean, std)``: regression targets are standardized on the training
    split for training; predictions and metrics are reported in the original units.
    """

    name: str
    tasks: list[Task]
    train: MultiTaskDataset | MultiInputDataset
    val: MultiTaskDataset | MultiInputDataset
    test: MultiTaskDataset | MultiInputDataset
    input_shape: tuple[int, ...]
    default_encoder: str = "mlp"
    preprocessor: TabularPreprocessor | None = None
    target_scaling: dict[str, tuple[float, float]] = field(default_factory=dict)
    target_columns: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def select_tasks(self, names: Sequence[str]) -> DatasetBundle:
        """The same data restricted to ``names`` (for single-task baselines and task groups)."""
        for n in names:
            self.task(n)
        keep = list(names)

        def restrict(ds):
            if isinstance(ds, MultiTaskDataset):
                return MultiTaskDataset(ds.inputs, {k: ds.targets[k] for k in keep})
            return MultiInputDataset({k: ds.datasets[k] for k in keep})

        return DatasetBundle(
            name=self.name,
            tasks=[self.task(n) for n in keep],
            train=restrict(self.train),
            val=restrict(self.val),
            test=restrict(self.test),
            input_shape=self.input_shape,
            default_encoder=self.default_encoder,
            preprocessor=self.preprocessor,
            target_scaling={k: v for k, v in self.target_scaling.items() if k in keep},
            target_columns={k: v for k, v in self.target_columns.items() if k in keep},
            description=self.description,
        )
