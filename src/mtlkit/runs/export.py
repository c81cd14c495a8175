"""A trained run's model for serving, without mtlkit: TorchScript or ``torch.export``.

The exported module maps a float32 tensor of *preprocessed* features (or images), shape
``(batch, *input_shape)``, to ``{task: output}``:

- regression: the prediction in the target's original units, ``mean + std · head``;
- binary: ``P(y = 1)``, shape ``(batch,)``;
- multiclass: the class probabilities (softmax), shape ``(batch, classes)``, classes in the
  order of ``task.class_names``;
- multilabel: each label's probability (sigmoid), shape ``(batch, labels)``.

For a table run the features are :meth:`TrainedRun.features` of the rows: numeric column ``c``
with a missing cell set to ``medians[c]``, then ``(x - means[c]) / stds[c]``; then one 0/1
column per entry of ``indicators`` (1 where that column was missing); then, per categorical
column, a one-hot block over ``categories[col]`` (all zeros for a missing or unseen value). The
numbers are ``run.preprocessor.to_dict()`` (also in the run's ``tasks.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from mtlkit.config import ConfigError
from mtlkit.tasks import Task
from mtlkit.training.checkpoint import atomic_save

if TYPE_CHECKING:
    from mtlkit.runs.trained import TrainedRun

EXPORT_FORMATS = ("torchscript", "export")


class ServingModel(nn.Module):
    """Features → ``{task: served output}`` (see the module docstring); no mtlkit needed."""

    def __init__(
        self,
        model: nn.Module,
        tasks: list[Task],
        target_scaling: dict[str, tuple[float, float]],
    ) -> None:
        super().__init__()
        self.model = model
        self.tasks = tasks
        self.target_scaling = dict(target_scaling)

    def forward(self, features: Tensor) -> dict[str, Tensor]:
        outputs = self.model(features)
        served: dict[str, Tensor] = {}
        for task in self.tasks:
            out = outputs[task.name]
            if task.spec.scaled:  # values in the original units
                mean, std = self.target_scaling.get(task.name, (0.0, 1.0))
                served[task.name] = task.predict(out) * std + mean
            else:
                prob = task.probabilities(out)
                assert prob is not None
                served[task.name] = prob
        return served


def serving_model(run: TrainedRun) -> ServingModel:
    """The run's model in eval mode behind :class:`ServingModel` (frozen parameters)."""
    model = ServingModel(run.model, run.tasks, run.target_scaling).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def export_run(run: TrainedRun, path: str | Path, format: str = "torchscript") -> Path:
    """Write ``run``'s :class:`ServingModel` to ``path`` (atomically: an interrupted export
    leaves the file that was there, whole).

    ``format="torchscript"``: :func:`torch.jit.trace`; load with ``torch.jit.load(path)``.
    ``format="export"``: :func:`torch.export.export` with a dynamic batch size; load with
    ``torch.export.load(path).module()``. Either maps a ``(batch, *input_shape)`` float32
    tensor to ``{task: output}``.
    """
    if format not in EXPORT_FORMATS:
        raise ConfigError(
            f"export: format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}"
        )
    path = Path(path)
    model = serving_model(run)
    example = torch.zeros(2, *run.input_shape)
    if format == "torchscript":
        traced = torch.jit.trace(model, (example,), strict=False, check_trace=False)
        atomic_save(traced, path, save=torch.jit.save)
    else:
        batch = torch.export.Dim("batch", min=1)
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
        atomic_save(program, path, save=torch.export.save)
    return path
