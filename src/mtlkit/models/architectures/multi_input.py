"""Multi-input models: one encoder branch per task (own input, own domain), optional shared
layers, and fusion of the task representations before the heads."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mtlkit._param_validation import Interval, Options
from mtlkit.models.architectures.common import OwnedModel, mlp
from mtlkit.models.base import EncoderFactory, Inputs, make_head
from mtlkit.tasks import Task

FUSIONS = ("none", "concat", "sum", "mean", "attention")
HEAD_INPUTS = ("fused", "own")


class MultiInputFusion(OwnedModel):
    """``rₜ = shared(projectₜ(branchₜ(xₜ)))`` per task, fused into ``fₜ``, then ``headₜ``.

    - Branches: each task has its own encoder (``encoder_factory`` may be a mapping
      ``{task: factory}`` for tasks of different modalities) or, with ``shared_encoder``, one
      encoder reads every task's input. ``project`` adds a per-branch ``Linear → ReLU`` to a
      common width; ``shared_layers`` is an MLP applied to every branch (shared weights).
    - Fusion of the branch representations, per task over its fusion set (all tasks at build
      time): ``concat`` (missing branches are zeros, so widths stay fixed), ``sum``, ``mean``,
      or ``attention``: ``fₜ = Σ_b softmax_b(qₜ · tanh(K r_b) / √A) r_b`` with a per-task query
      ``qₜ`` and a shared key map ``K``. ``none`` disables fusion.
    - ``head_input``: ``fused`` or ``own`` (``rₜ`` only), for all tasks or per task
      (``{task: fused|own}``).

    Inputs: a tensor (every branch reads it), or a mapping ``{task: input}``; outputs are given
    for the tasks present. Fusion combines representations *of the same examples*: the inputs of
    one batch must be paired (equal batch sizes; row i of every input describes example i).
    Unpaired multi-input data (tasks with their own rows) needs ``head_input: own``.

    Shape contract: branch t maps ``(N, *shapeₜ)`` to ``(N, Dₜ)``; sum/mean/attention need equal
    widths (use ``project``); ``fₜ`` is ``(N, Σ D)`` for concat, else ``(N, D)``; head t gives
    ``(N, num_outputsₜ)``.

    Sharing: branch b's parameters are owned by task b and by every task whose head reads a
    fusion including b; shared layers (and a shared encoder) by all tasks whose heads they reach;
    ``K`` by the attention-reading tasks; queries and heads are task-specific.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "fusion": [Options(FUSIONS)],
        "head_input": [Options(HEAD_INPUTS), dict],
        "shared_encoder": [bool],
        "shared_layers": [list, tuple],
        "project": [Interval(Integral, 1, None), None],
        "attention_dim": [Interval(Integral, 1, None), None],
        "head_hidden": [Interval(Integral, 1, None), None],
    }
    """Each option's allowed values (checked by :func:`mtlkit.models.make_model`)."""

    def __init__(
        self,
        encoder_factory: EncoderFactory | Mapping[str, EncoderFactory],
        tasks: Sequence[Task],
        fusion: str = "concat",
        head_input: str | Mapping[str, str] = "fused",
        shared_encoder: bool = False,
        shared_layers: Sequence[int] = (),
        project: int | None = None,
        attention_dim: int | None = None,
        head_hidden: int | None = None,
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"model.arch_options.fusion must be one of {FUSIONS}, got {fusion!r}")
        self.tasks = list(tasks)
        self.fusion = fusion
        self.head_hidden = head_hidden
        self.shared_encoder = bool(shared_encoder)
        self._factories = encoder_factory
        self._project = project
        self.head_input: dict[str, str] = {}
        for t in self.task_names:
            mode = head_input.get(t, "fused") if isinstance(head_input, Mapping) else head_input
            if mode not in HEAD_INPUTS:
                raise ValueError(
                    f"model.arch_options.head_input for {t!r} must be fused or own, got {mode!r}"
                )
            self.head_input[t] = "own" if fusion == "none" else mode
        if isinstance(head_input, Mapping):
            unknown = set(head_input) - set(self.task_names)
            if unknown:
                raise ValueError(f"model.arch_options.head_input: unknown tasks {sorted(unknown)}")
        if self.shared_encoder:
            self.encoder: nn.Module | None = self._factory(self.task_names[0])()
        else:
            self.encoder = None
        self.branches = nn.ModuleDict()
        self.projections = nn.ModuleDict()
        for t in self.task_names:
            self._add_branch(t)
        widths = {self._branch_width(t) for t in self.task_names}
        self.shared: nn.Module = nn.Identity()
        if shared_layers:
            if len(widths) > 1:
                raise ValueError(
                    f"shared_layers need branches of equal width, got {sorted(widths)}; "
                    "set the project option"
                )
            self.shared = mlp(widths.pop(), shared_layers)
            widths = {int(shared_layers[-1])}
        if fusion in ("sum", "mean", "attention") and len(widths) > 1:
            raise ValueError(
                f"fusion {fusion!r} needs branches of equal width, got {sorted(widths)}; "
                "set the project option"
            )
        self.key: nn.Module | None = None
        self.queries = nn.ParameterDict()
        if fusion == "attention":
            self.attention_dim = int(attention_dim or next(iter(widths)))
        self.fuse_sets: dict[str, list[str]] = {}
        self.heads = nn.ModuleDict()
        for task in self.tasks:
            self._add_task_modules(task, list(self.task_names), head_hidden)

    def _factory(self, task: str) -> EncoderFactory:
        if isinstance(self._factories, Mapping):
            if task not in self._factories:
                raise ValueError(f"multi_input: no encoder factory for task {task!r}")
            return self._factories[task]
        return self._factories

    def _add_branch(self, t: str) -> None:
        encoder = self.encoder if self.encoder is not None else self._factory(t)()
        if self.encoder is None:
            self.branches[t] = encoder
        if self._project:
            self.projections[t] = nn.Sequential(
                nn.Linear(encoder.out_features, int(self._project)), nn.ReLU()
            )

    def _branch_width(self, t: str) -> int:
        if self._project:
            return int(self._project)
        encoder = self.encoder if self.encoder is not None else self.branches[t]
        return int(encoder.out_features)

    def _rep_width(self, t: str) -> int:
        if isinstance(self.shared, nn.Sequential) and len(self.shared) > 0:
            return int(self.shared[-2].out_features)
        return self._branch_width(t)

    def _add_task_modules(self, task: Task, fuse_set: list[str], head_hidden: int | None) -> None:
        t = task.name
        self.fuse_sets[t] = fuse_set
        if self.fusion == "attention" and self.head_input[t] == "fused":
            if self.key is None:
                self.key = nn.Linear(self._rep_width(t), self.attention_dim)
            self.queries[t] = nn.Parameter(
                torch.randn(self.attention_dim) / math.sqrt(self.attention_dim)
            )
        if self.head_input[t] == "fused" and self.fusion == "concat":
            width = sum(self._rep_width(b) for b in fuse_set)
        else:
            width = self._rep_width(t)
        self.heads[t] = make_head(width, task, head_hidden)

    def add_task(
        self,
        task: Task,
        head_hidden: int | None = None,
        head_input: str = "own",
        encoder_factory: EncoderFactory | None = None,
    ) -> None:
        """Add a branch and a head for ``task``; old tasks' outputs do not change.

        The new task's fused representation (``head_input: fused``) covers the old branches and
        its own; old tasks keep fusing the old branches only.
        """
        if task.name in self.heads:
            raise ValueError(f"task {task.name!r} is already in the model")
        if head_input not in HEAD_INPUTS:
            raise ValueError(f"head_input must be fused or own, got {head_input!r}")
        if encoder_factory is not None:
            if not isinstance(self._factories, Mapping):
                self._factories = dict.fromkeys(self.task_names, self._factories)
            self._factories = {**self._factories, task.name: encoder_factory}
        self.tasks.append(task)
        self.head_input[task.name] = "own" if self.fusion == "none" else head_input
        self._add_branch(task.name)
        fuse_set = sorted(
            set().union(*self.fuse_sets.values()) | {task.name}, key=self.task_names.index
        )
        self._add_task_modules(
            task, fuse_set, self.head_hidden if head_hidden is None else head_hidden
        )

    def represent(self, x: Inputs) -> dict[str, Tensor]:
        """Each present task's own representation ``rₜ``."""
        inputs = x if isinstance(x, Mapping) else dict.fromkeys(self.task_names, x)
        reps = {}
        for t, xt in inputs.items():
            encoder = self.encoder if self.encoder is not None else self.branches[t]
            r = encoder(xt)
            if self._project:
                r = self.projections[t](r)
            reps[t] = self.shared(r)
        return reps

    def _fuse(self, t: str, reps: Mapping[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        members = [b for b in self.fuse_sets[t] if b in reps]
        sizes = {b: reps[b].shape[0] for b in members}
        if len(set(sizes.values())) > 1:
            raise ValueError(
                f"fusion needs paired inputs (equal batch sizes), got {sizes}; "
                "use head_input: own for unpaired multi-input data"
            )
        if self.fusion == "concat":
            ref = reps[t]
            parts = [
                reps[b] if b in reps else ref.new_zeros(ref.shape[0], self._rep_width(b))
                for b in self.fuse_sets[t]
            ]
            return torch.cat(parts, dim=1), None
        stacked = torch.stack([reps[b] for b in members], dim=1)  # (N, B, D)
        if self.fusion == "sum":
            return stacked.sum(dim=1), None
        if self.fusion == "mean":
            return stacked.mean(dim=1), None
        scores = torch.tanh(self.key(stacked)) @ self.queries[t] / math.sqrt(self.attention_dim)
        weights = scores.softmax(dim=1)  # (N, B)
        return (weights.unsqueeze(-1) * stacked).sum(dim=1), weights

    def fusion_weights(self, x: Inputs) -> dict[str, Tensor]:
        """Attention weights ``(N, branches present)`` of every attention-fused task."""
        reps = self.represent(x)
        out = {}
        for t in reps:
            if self.head_input[t] == "fused" and self.fusion == "attention":
                out[t] = self._fuse(t, reps)[1]
        return out

    def forward(self, x: Inputs) -> dict[str, Tensor]:
        reps = self.represent(x)
        out = {}
        for t in reps:
            z = self._fuse(t, reps)[0] if self.head_input[t] == "fused" else reps[t]
            out[t] = self.heads[t](z)
        return out

    def _forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.forward(x)

    def last_shared_modules(self) -> list[nn.Module]:
        """The shared layers on top of the branches if any, else the shared encoder."""
        shared = {id(p) for p in self.shared_parameters()}
        if any(id(p) in shared for p in self.shared.parameters()):
            return [self.shared]
        return [self.encoder] if self.encoder is not None else list(self.branches.values())

    def _ownership(self) -> Iterable[tuple[nn.Module | nn.Parameter, Iterable[str]]]:
        readers = {b: {b} for b in self.task_names}
        for t in self.task_names:
            if self.head_input[t] == "fused":
                for b in self.fuse_sets[t]:
                    readers[b].add(t)
        everyone = set().union(*readers.values())
        for b in self.task_names:
            if b in self.branches:
                yield self.branches[b], readers[b]
            if b in self.projections:
                yield self.projections[b], readers[b]
        if self.encoder is not None:
            yield self.encoder, everyone
        yield self.shared, everyone
        if self.key is not None:
            yield self.key, {t for t in self.task_names if self.head_input[t] == "fused"}
        for t in self.task_names:
            if t in self.queries:
                yield self.queries[t], {t}
            yield self.heads[t], {t}


def build_multi_input(
    encoder_factory: EncoderFactory | Mapping[str, EncoderFactory],
    tasks: Sequence[Task],
    **options: Any,
) -> MultiInputFusion:
    """YAML: ``arch: multi_input``; options ``fusion`` (concat|sum|mean|attention|none),
    ``head_input`` (fused|own or {task: ...}), ``shared_encoder`` (false), ``shared_layers``
    ([]), ``project`` (null), ``attention_dim``, ``head_hidden``."""
    return MultiInputFusion(encoder_factory, tasks, **options)
