"""Multi-Task Attention Network (MTAN; Liu, Johns & Davison, CVPR 2019), for staged encoders."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from numbers import Integral
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mtlkit._param_validation import Interval
from mtlkit.models.architectures.common import OwnedModel
from mtlkit.models.base import EncoderFactory, make_head
from mtlkit.models.encoders.staged import stage_list, stage_shapes
from mtlkit.tasks import Task

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_POOL = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}


def _pointwise(spatial: int, cin: int, cout: int) -> nn.Module:
    return nn.Linear(cin, cout) if spatial == 0 else _CONV[spatial](cin, cout, kernel_size=1)


class AttentionBlock(nn.Module):
    """Task attention over one shared stage: ``aᵢ = mᵢ ⊙ sᵢ``, ``mᵢ = σ(g([sᵢ, f(aᵢ₋₁)]))``.

    ``sᵢ`` is the shared stage's output ``(N, C, *spatial)`` or ``(N, C)``; ``aᵢ₋₁`` the task's
    attended features of the previous stage; ``f`` (1×1 conv or linear, then adaptive average
    pooling) brings it to ``sᵢ``'s shape; ``g`` is two pointwise layers (1×1 convs or linears).
    """

    def __init__(self, shape: Sequence[int], previous: Sequence[int] | None) -> None:
        super().__init__()
        if len(shape) > 4:
            raise ValueError(f"mtan: stage outputs with {len(shape) - 1} spatial dims unsupported")
        self.shape = tuple(shape)
        self.spatial = len(shape) - 1
        channels = shape[0]
        self.adapter: nn.Module | None = None
        if previous is not None:
            prev_spatial = len(previous) - 1
            if prev_spatial > 0 and self.spatial > 0 and prev_spatial != self.spatial:
                raise ValueError(f"mtan: cannot attend from stage shape {previous} to {shape}")
            cin = previous[0]
            self.adapter = nn.Sequential(
                _pointwise(self.spatial if prev_spatial else 0, cin, channels), nn.ReLU()
            )
        mask_in = channels * (2 if previous is not None else 1)
        self.mask = nn.Sequential(
            _pointwise(self.spatial, mask_in, channels),
            nn.ReLU(),
            _pointwise(self.spatial, channels, channels),
            nn.Sigmoid(),
        )

    def adapt(self, previous: Tensor) -> Tensor:
        if previous.dim() > 2 and self.spatial == 0:
            previous = previous.flatten(2).mean(dim=2)  # global average pooling
        out = self.adapter(previous)
        if self.spatial == 0:
            return out
        if out.dim() == 2:  # vector → feature map: broadcast over the spatial dims
            return out.view(*out.shape, *[1] * self.spatial).expand(-1, -1, *self.shape[1:])
        return _POOL[self.spatial](out, self.shape[1:])

    def masks(self, shared: Tensor, previous: Tensor | None) -> Tensor:
        z = shared if previous is None else torch.cat([shared, self.adapt(previous)], dim=1)
        return self.mask(z)

    def forward(self, shared: Tensor, previous: Tensor | None) -> Tensor:
        return self.masks(shared, previous) * shared


class MTAN(OwnedModel):
    """A shared staged network with per-task soft attention masks on every stage's features.

    Task t's features follow the shared network stage by stage: ``aₜ⁰ = mₜ⁰ ⊙ s⁰`` and
    ``aₜⁱ = mₜⁱ ⊙ sⁱ`` with masks ``mₜⁱ ∈ (0, 1)`` computed from the shared features and
    ``aₜⁱ⁻¹`` (see :class:`AttentionBlock`); head t reads the attended last stage. Unlike the
    paper (which reads a block's intermediate layer), masks are computed from stage outputs, so
    any staged encoder works: convolutional stages ``(N, C, H, W)`` (1×1 convolutions) and MLP
    stages ``(N, D)`` (linear layers), or a mix (a CNN ending in a flat stage).

    Shape contract: staged encoder with stage outputs ``(N, Cᵢ, *spatial)`` or ``(N, Dᵢ)``; the
    last stage gives ``(N, D)``; head t gives ``(N, num_outputsₜ)``.

    Sharing: the shared network receives every task's gradient; task t's attention blocks and
    head are task-specific.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "head_hidden": [Interval(Integral, 1, None), None],
        "input_shape": [list, tuple, None],
    }
    """Each option's allowed values (checked by :func:`mtlkit.models.make_model`)."""

    def __init__(
        self,
        encoder_factory: EncoderFactory,
        tasks: Sequence[Task],
        head_hidden: int | None = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.head_hidden = head_hidden
        self.encoder = encoder_factory()
        self.stage_shapes = stage_shapes(self.encoder, input_shape)
        if len(self.stage_shapes[-1]) != 1:
            raise ValueError("mtan: the encoder's last stage must return (N, features)")
        self.attention = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        for task in self.tasks:
            self._add_task_modules(task, head_hidden)

    def _add_task_modules(self, task: Task, head_hidden: int | None) -> None:
        shapes = self.stage_shapes
        self.attention[task.name] = nn.ModuleList(
            AttentionBlock(shape, shapes[i - 1] if i else None) for i, shape in enumerate(shapes)
        )
        self.heads[task.name] = make_head(self.encoder.out_features, task, head_hidden)

    def add_task(self, task: Task, head_hidden: int | None = None) -> None:
        """Attach attention blocks and a head for ``task``; old tasks' outputs do not change."""
        if task.name in self.heads:
            raise ValueError(f"task {task.name!r} is already in the model")
        self.tasks.append(task)
        self._add_task_modules(task, self.head_hidden if head_hidden is None else head_hidden)

    def _run(self, x: Tensor, record: dict[str, list[Tensor]] | None = None) -> dict[str, Tensor]:
        names = self.task_names
        attended: dict[str, Tensor | None] = dict.fromkeys(names)
        s = x
        for i, stage in enumerate(stage_list(self.encoder)):
            s = stage(s)
            for t in names:
                block = self.attention[t][i]
                mask = block.masks(s, attended[t])
                if record is not None:
                    record.setdefault(t, []).append(mask)
                attended[t] = mask * s
        return {t: self.heads[t](attended[t]) for t in names}

    def _forward(self, x: Tensor) -> dict[str, Tensor]:
        return self._run(x)

    def attention_masks(self, x: Tensor) -> dict[str, list[Tensor]]:
        """``{task: [mask of every stage]}``, each shaped like that stage's output."""
        record: dict[str, list[Tensor]] = {}
        self._run(x, record)
        return record

    def last_shared_modules(self) -> list[nn.Module]:
        return [self.encoder]

    def _ownership(self) -> Iterable[tuple[nn.Module, Iterable[str]]]:
        yield self.encoder, self.task_names
        for t in self.task_names:
            yield self.attention[t], {t}
            yield self.heads[t], {t}


def build_mtan(encoder_factory: EncoderFactory, tasks: Sequence[Task], **options: Any) -> MTAN:
    """YAML: ``arch: mtan``; options ``head_hidden``, ``input_shape``."""
    return MTAN(encoder_factory, tasks, **options)
