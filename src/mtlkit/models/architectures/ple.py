"""Progressive Layered Extraction (PLE; Tang et al., RecSys 2020), the core of the gated
mixture-of-experts family (MMoE, CGC, DSelect-k are special cases)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mtlkit._param_validation import Interval, Options
from mtlkit.models.architectures.common import (
    GATES,
    OwnedModel,
    flat_size,
    make_gate,
    mix_experts,
    mlp,
)
from mtlkit.models.base import EncoderFactory, make_head
from mtlkit.models.encoders.staged import encoder_input_shape
from mtlkit.tasks import Task

GATE_INPUTS = ("shared", "input")


class ProgressiveLayeredExtraction(OwnedModel):
    """PLE: ``num_levels`` extraction levels of shared and task-specific experts with gates.

    Level 0 experts are encoders built by the user's ``encoder_factory`` (any input: tables,
    images); levels ``l ≥ 1`` are MLP experts (``level_hidden``) on the previous level's outputs.
    At every level, task t's gate mixes its own experts and the shared experts; below the last
    level a shared gate mixes all experts into the input of the next level's shared experts.

    Shape contract: input ``(N, ...)`` as the encoder expects; level-0 experts give ``(N, D)``;
    every gate gives weights ``(N, E)`` (non-negative, summing to one over its E experts); the
    level output of task t is ``(N, D_l)``; head t gives ``(N, num_outputsₜ)``.

    ``gate_input``: level-0 gates read either ``"shared"`` — the output of one extra *gate
    encoder* built by the same factory (works for images and tables) — or ``"input"`` — the raw
    input, flattened (needs the encoder's ``input_shape``). Later gates read the previous level's
    output of their task (or of the shared path), as in the paper.

    Sharing (gradient sense): shared experts, shared gates and the gate encoder are shared. Task
    t's experts below the last level are read by the shared gate, so they (and the task-t gates
    and experts feeding them) receive every task's gradient: they are shared too. At the last
    level, task t's experts, its gate, and its gate one level below are task-specific.
    ``parameter_owners()`` gives the exact owners of every parameter.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "num_levels": [Interval(Integral, 1, None)],
        "shared_experts": [Interval(Integral, 0, None)],
        "task_experts": [Interval(Integral, 0, None)],
        "level_hidden": [list, tuple, None],
        "gate_input": [Options(GATE_INPUTS)],
        "gate": [Options(tuple(GATES))],
        "gate_options": [dict, None],
        "head_hidden": [Interval(Integral, 1, None), None],
        "input_shape": [list, tuple, None],
    }
    """Each option's allowed values (checked by :func:`mtlkit.models.make_model`)."""

    def __init__(
        self,
        encoder_factory: EncoderFactory,
        tasks: Sequence[Task],
        num_levels: int = 2,
        shared_experts: int = 2,
        task_experts: int = 1,
        level_hidden: Sequence[int] | None = None,
        gate_input: str = "shared",
        gate: str = "softmax",
        gate_options: Mapping[str, Any] | None = None,
        head_hidden: int | None = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if num_levels < 1:
            raise ValueError(f"model.arch_options.num_levels must be >= 1, got {num_levels}")
        if shared_experts < 0 or task_experts < 0 or shared_experts + task_experts < 1:
            raise ValueError(
                "model.arch_options: need shared_experts + task_experts >= 1 "
                f"(got {shared_experts} and {task_experts})"
            )
        if num_levels > 1 and shared_experts < 1:
            raise ValueError(
                "model.arch_options: PLE with several levels needs shared_experts >= 1"
            )
        if gate_input not in GATE_INPUTS:
            raise ValueError(
                f"model.arch_options.gate_input must be one of {GATE_INPUTS}, got {gate_input!r}"
            )
        self.tasks = list(tasks)
        self.num_levels = int(num_levels)
        self.num_shared_experts = int(shared_experts)
        self.num_task_experts = int(task_experts)
        self.gate_input = gate_input
        self.gate_kind = gate
        self.gate_options = dict(gate_options or {})
        self.head_hidden = head_hidden
        self._encoder_factory = encoder_factory

        probe = encoder_factory()
        dims = [int(probe.out_features)]
        hidden = [int(h) for h in (level_hidden or [dims[0]])]
        for _ in range(1, self.num_levels):
            dims.append(hidden[-1])
        self.dims = dims
        self._level_hidden = hidden

        if gate_input == "shared":
            self.gate_encoder: nn.Module | None = encoder_factory()
            gate_in0 = int(self.gate_encoder.out_features)
        else:
            self.gate_encoder = None
            gate_in0 = flat_size(encoder_input_shape(probe, input_shape, "gate_input='input'"))
        self._gate_in = [gate_in0] + dims[:-1]

        self.shared_experts = nn.ModuleList(
            nn.ModuleList(self._make_expert(level) for _ in range(self.num_shared_experts))
            for level in range(self.num_levels)
        )
        self.task_experts = nn.ModuleList(nn.ModuleDict() for _ in range(self.num_levels))
        self.task_gates = nn.ModuleList(nn.ModuleDict() for _ in range(self.num_levels))
        self.shared_gate_tasks: list[list[str]] = [
            [t.name for t in self.tasks] for _ in range(self.num_levels - 1)
        ]
        n_all = self.num_shared_experts + self.num_task_experts * len(self.tasks)
        self.shared_gates = nn.ModuleList(
            self._make_gate(level, n_all) for level in range(self.num_levels - 1)
        )
        self.heads = nn.ModuleDict()
        for task in self.tasks:
            self._add_task_modules(task, head_hidden)

    def _make_expert(self, level: int) -> nn.Module:
        if level == 0:
            expert = self._encoder_factory()
            if int(expert.out_features) != self.dims[0]:
                raise ValueError("the encoder factory must build encoders of equal out_features")
            return expert
        return mlp(self.dims[level - 1], self._level_hidden)

    def _make_gate(self, level: int, num_experts: int) -> nn.Module:
        return make_gate(self.gate_kind, self._gate_in[level], num_experts, **self.gate_options)

    def _add_task_modules(self, task: Task, head_hidden: int | None) -> None:
        n = self.num_task_experts + self.num_shared_experts
        for level in range(self.num_levels):
            self.task_experts[level][task.name] = nn.ModuleList(
                self._make_expert(level) for _ in range(self.num_task_experts)
            )
            self.task_gates[level][task.name] = self._make_gate(level, n)
        self.heads[task.name] = make_head(self.dims[-1], task, head_hidden)

    def add_task(self, task: Task, head_hidden: int | None = None) -> None:
        """Attach experts, gates and a head for a new task; old tasks' outputs do not change.

        The new task's experts are not read by the shared gates (that would change the old
        tasks' outputs), so they belong to the new task alone.
        """
        if task.name in self.heads:
            raise ValueError(f"task {task.name!r} is already in the model")
        self._add_task_modules(task, self.head_hidden if head_hidden is None else head_hidden)
        self.tasks.append(task)

    def _forward(
        self,
        x: Tensor,
        record: dict[str, Tensor] | None = None,
        representation: list[Tensor] | None = None,
    ) -> dict[str, Tensor]:
        names = self.task_names
        gate_in = self.gate_encoder(x) if self.gate_encoder is not None else x
        task_in = dict.fromkeys(names, x)
        task_gate_in = dict.fromkeys(names, gate_in)
        shared_in, shared_gate_in = x, gate_in
        for level in range(self.num_levels):
            shared_out = [e(shared_in) for e in self.shared_experts[level]]
            if representation is not None and level == 0:
                stacked = torch.stack(shared_out, dim=1)  # (N, E, D)
                representation.append(stacked)
                shared_out = list(stacked.unbind(dim=1))
            own_out = {t: [e(task_in[t]) for e in self.task_experts[level][t]] for t in names}
            new_task_in = {}
            for t in names:
                weights = self.task_gates[level][t](task_gate_in[t])
                if record is not None:
                    record[f"level{level}.{t}"] = weights
                new_task_in[t] = mix_experts(weights, own_out[t] + shared_out)
            if level < self.num_levels - 1:
                pool = shared_out + [o for t in self.shared_gate_tasks[level] for o in own_out[t]]
                weights = self.shared_gates[level](shared_gate_in)
                if record is not None:
                    record[f"level{level}.shared"] = weights
                shared_in = shared_gate_in = mix_experts(weights, pool)
            task_in = task_gate_in = new_task_in
        return {t: self.heads[t](task_in[t]) for t in names}

    @property
    def has_representation(self) -> bool:
        """Whether every shared parameter reaches the losses only through the stacked outputs
        of the shared experts (one level, raw-input gates): then it is a shared representation
        for representation-gradient strategies (MGDA-UB style)."""
        return self.num_levels == 1 and self.gate_encoder is None and self.num_shared_experts > 0

    def forward_with_representation(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor | None]:
        """Outputs and the shared representation ``(N, E_shared, D)`` (``None`` when the model
        has none, see :attr:`has_representation`)."""
        holder: list[Tensor] = []
        outputs = self._forward(x, representation=holder)
        return outputs, holder[0] if self.has_representation else None

    def gate_weights(self, x: Tensor) -> dict[str, Tensor]:
        """Every gate's weights ``(N, E)`` on input ``x``, keyed ``level{l}.{task or 'shared'}``."""
        record: dict[str, Tensor] = {}
        self._forward(x, record)
        return record

    def last_shared_modules(self) -> list[nn.Module]:
        """The shared experts of the last level (the task gates mix them for the heads)."""
        return list(self.shared_experts[-1])

    def _ownership(self) -> Iterable[tuple[nn.Module, Iterable[str]]]:
        names = self.task_names
        last = self.num_levels - 1
        out_task = {t: {t} for t in names}  # owners of task t's output at the current level
        out_shared: set[str] = set()  # owners of the shared path's output at the current level
        for level in reversed(range(self.num_levels)):
            has_shared_gate = level < last
            expert_owners = {}
            for t in names:
                owners = set(out_task[t])
                if has_shared_gate and t in self.shared_gate_tasks[level]:
                    owners |= out_shared
                expert_owners[t] = owners
                yield self.task_experts[level][t], owners
                yield self.task_gates[level][t], out_task[t]
            shared_owners = set().union(*out_task.values())
            if has_shared_gate:
                shared_owners |= out_shared
                yield self.shared_gates[level], out_shared
            yield self.shared_experts[level], shared_owners
            gate_owners = set().union(*out_task.values()) | (
                out_shared if has_shared_gate else set()
            )
            if level > 0:
                out_task = {
                    t: out_task[t] | (expert_owners[t] if self.num_task_experts else set())
                    for t in names
                }
                out_shared = (shared_owners if self.num_shared_experts else set()) | (
                    out_shared if has_shared_gate else set()
                )
            elif self.gate_encoder is not None:
                yield self.gate_encoder, gate_owners
        for t in names:
            yield self.heads[t], {t}


PLE = ProgressiveLayeredExtraction


def build_ple(
    encoder_factory: EncoderFactory, tasks: Sequence[Task], **options: Any
) -> ProgressiveLayeredExtraction:
    """YAML: ``arch: ple``; options ``num_levels`` (2), ``shared_experts`` (2), ``task_experts``
    (1), ``level_hidden`` ([D]), ``gate_input`` (shared|input), ``gate`` (softmax|dselect),
    ``gate_options`` ({}), ``head_hidden``, ``input_shape``."""
    return ProgressiveLayeredExtraction(encoder_factory, tasks, **options)
