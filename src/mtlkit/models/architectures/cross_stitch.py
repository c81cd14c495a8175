"""Cross-stitch networks (Misra et al., CVPR 2016), for any encoder given as stages."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mtlkit._param_validation import Interval, Options
from mtlkit.models.architectures.common import OwnedModel
from mtlkit.models.base import EncoderFactory, make_head
from mtlkit.models.encoders.staged import stage_list, stage_shapes
from mtlkit.tasks import Task

GRANULARITIES = ("channel", "layer")


class CrossStitch(OwnedModel):
    """One column (a copy of the staged encoder) per task, mixed by cross-stitch units.

    After every stage ``i`` in ``stitch_after``, column t continues from
    ``h̃ₜ = Σₛ αₜₛ ⊙ hₛ`` over the source columns s: ``αₜ`` is a learned vector per channel
    (``granularity: channel``, as in the paper) or one scalar per pair (``layer``), initialised to
    ``self_weight`` for t's own column and ``(1 − self_weight)/(T − 1)`` for the others.

    Shape contract: the encoder is staged (``stages`` applied in order, see
    :mod:`mtlkit.models.encoders.staged`); stage i maps to ``(N, Cᵢ, ...)`` or ``(N, Cᵢ)``, with
    channels on dimension 1; every column has the same stage shapes; the last stage gives
    ``(N, D)``; head t gives ``(N, num_outputsₜ)``.

    Sharing (gradient sense): stitch units route every column into every task, so the stages of
    all columns up to the last stitch point receive gradients from all tasks and are *shared*, as
    are the stitch rows before the last stitch point. Column t's stages after the last stitch, its
    last stitch row ``αₜ`` and head t are task-specific. ``parameter_owners()`` is exact.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "stitch_after": [list, tuple, None],
        "granularity": [Options(GRANULARITIES)],
        "self_weight": [Interval(Real, 0, 1)],
        "head_hidden": [Interval(Integral, 1, None), None],
        "input_shape": [list, tuple, None],
    }
    """Each option's allowed values (checked by :func:`mtlkit.models.make_model`)."""

    def __init__(
        self,
        encoder_factory: EncoderFactory,
        tasks: Sequence[Task],
        stitch_after: Sequence[int] | None = None,
        granularity: str = "channel",
        self_weight: float = 0.9,
        head_hidden: int | None = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if granularity not in GRANULARITIES:
            raise ValueError(
                f"model.arch_options.granularity must be one of {GRANULARITIES}, "
                f"got {granularity!r}"
            )
        if not 0.0 <= self_weight <= 1.0:
            raise ValueError(f"model.arch_options.self_weight must be in [0, 1], got {self_weight}")
        self.tasks = list(tasks)
        self.granularity = granularity
        self.self_weight = float(self_weight)
        self.head_hidden = head_hidden
        self._encoder_factory = encoder_factory
        self.columns = nn.ModuleDict({t.name: encoder_factory() for t in self.tasks})
        first = next(iter(self.columns.values()))
        self.num_stages = len(stage_list(first))
        self.stage_shapes = stage_shapes(first, input_shape)
        if stitch_after is None:
            stitch_after = range(self.num_stages - 1)
        points = set()
        for i in stitch_after:
            j = int(i) + self.num_stages if int(i) < 0 else int(i)
            if not 0 <= j < self.num_stages:
                raise ValueError(
                    f"model.arch_options.stitch_after: stage {i} out of range "
                    f"(the encoder has {self.num_stages} stages)"
                )
            points.add(j)
        self.stitch_after = sorted(points)
        self.sources: dict[str, list[str]] = {t.name: list(self.task_names) for t in self.tasks}
        self.stitches = nn.ModuleDict({str(i): nn.ParameterDict() for i in self.stitch_after})
        self.heads = nn.ModuleDict()
        for task in self.tasks:
            self._add_task_modules(task, head_hidden)

    def _stitch_row(self, point: int, own: int, n: int) -> nn.Parameter:
        channels = self.stage_shapes[point][0] if self.granularity == "channel" else 1
        other = (1.0 - self.self_weight) / (n - 1) if n > 1 else 0.0
        row = torch.full((channels, n), other)
        row[:, own] = self.self_weight if n > 1 else 1.0
        return nn.Parameter(row)

    def _add_task_modules(self, task: Task, head_hidden: int | None) -> None:
        sources = self.sources[task.name]
        for i in self.stitch_after:
            self.stitches[str(i)][task.name] = self._stitch_row(
                i, sources.index(task.name), len(sources)
            )
        self.heads[task.name] = make_head(self.columns[task.name].out_features, task, head_hidden)

    def add_task(self, task: Task, head_hidden: int | None = None) -> None:
        """Add a column, stitch rows and a head for ``task``; old tasks' outputs do not change.

        The new column reads all columns; old columns do not read the new one.
        """
        if task.name in self.heads:
            raise ValueError(f"task {task.name!r} is already in the model")
        self.tasks.append(task)
        self.columns[task.name] = self._encoder_factory()
        self.sources[task.name] = list(self.task_names)
        self._add_task_modules(task, self.head_hidden if head_hidden is None else head_hidden)

    def stitch_weights(self) -> dict[str, dict[str, Tensor]]:
        """``{f"after{i}": {task: α (channels, sources)}}``; columns in ``self.sources[task]``."""
        return {f"after{i}": dict(self.stitches[str(i)].items()) for i in self.stitch_after}

    def _forward(self, x: Tensor) -> dict[str, Tensor]:
        names = self.task_names
        stages = {t: stage_list(self.columns[t]) for t in names}
        h = dict.fromkeys(names, x)
        for i in range(self.num_stages):
            u = {t: stages[t][i](h[t]) for t in names}
            if i in self.stitch_after:
                rows = self.stitches[str(i)]
                h = {}
                for t in names:
                    src = self.sources[t]
                    stacked = torch.stack([u[s] for s in src])  # (S, N, C, ...)
                    alpha = rows[t].t()  # (S, C)
                    alpha = alpha.reshape(len(src), 1, alpha.shape[1], *[1] * (stacked.dim() - 3))
                    h[t] = (alpha * stacked).sum(dim=0)
            else:
                h = u
        return {t: self.heads[t](h[t]) for t in names}

    def last_shared_modules(self) -> list[nn.Module]:
        return list(self.columns.values())

    def _ownership(self) -> Iterable[tuple[nn.Module | nn.Parameter, Iterable[str]]]:
        names = self.task_names
        out = {t: {t} for t in names}  # owners of column t's state after stage i
        for i in reversed(range(self.num_stages)):
            if i in self.stitch_after:
                for t in names:
                    yield self.stitches[str(i)][t], out[t]
                out = {
                    c: set().union(*(out[t] for t in names if c in self.sources[t])) for c in names
                }
            for c in names:
                yield stage_list(self.columns[c])[i], out[c]
        for t in names:
            yield self.heads[t], {t}
            for name, p in self.columns[t].named_parameters():
                if not name.startswith("stages."):  # parameters outside the stages, if any
                    yield p, out[t]


def build_cross_stitch(
    encoder_factory: EncoderFactory, tasks: Sequence[Task], **options: Any
) -> CrossStitch:
    """YAML: ``arch: cross_stitch``; options ``stitch_after`` (all stages but the last),
    ``granularity`` (channel|layer), ``self_weight`` (0.9), ``head_hidden``, ``input_shape``."""
    return CrossStitch(encoder_factory, tasks, **options)
