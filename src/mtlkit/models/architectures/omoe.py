"""One-gate Mixture-of-Experts (OMoE), the baseline of Ma et al. (KDD 2018, MMoE)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mtlkit.models.architectures.mmoe import MMoE
from mtlkit.models.base import EncoderFactory
from mtlkit.tasks import Task


class OMoE(MMoE):
    """``outputₜ = headₜ(Σₑ g(z)ₑ · expertₑ(x))``: MMoE with one softmax gate for all tasks.

    Ma et al.'s eq. 5 (the MoE layer of Jacobs et al. / Shazeer et al. as a shared bottom):
    every task reads the same mixture of the shared experts, so only the heads are
    task-specific. The gate is one module registered under every task (its parameters are
    shared, owned by all tasks); ``gate_weights`` gives the same weights for each task. Options
    as :class:`MMoE`.
    """

    def _add_task_modules(self, task: Task, head_hidden: int | None) -> None:
        super()._add_task_modules(task, head_hidden)
        gates = self.task_gates[0]
        first = next(iter(gates.values()))
        gates[task.name] = first


def build_omoe(encoder_factory: EncoderFactory, tasks: Sequence[Task], **options: Any) -> OMoE:
    """YAML: ``arch: omoe``; options as ``mmoe``: ``num_experts`` (4), ``gate_input``
    (shared|input), ``head_hidden``, ``input_shape``."""
    return OMoE(encoder_factory, tasks, **options)
