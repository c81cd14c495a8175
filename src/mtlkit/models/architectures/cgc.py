"""Customized Gate Control (CGC; Tang et al., RecSys 2020): single-level PLE."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any, ClassVar

from mtlkit._param_validation import Interval, Options
from mtlkit.models.architectures.ple import GATE_INPUTS, ProgressiveLayeredExtraction
from mtlkit.models.base import EncoderFactory
from mtlkit.tasks import Task


class CGC(ProgressiveLayeredExtraction):
    """``outputₜ = headₜ(Σₑ gₜ(z)ₑ · eₑ(x))`` over task t's own experts and the shared experts.

    ``shared_experts`` experts are shared by all tasks; every task also has ``task_experts``
    experts of its own. All experts are encoders built by the user's ``encoder_factory``. Gate t
    (task-specific) sees only task t's experts and the shared ones, so task t's experts and gate
    are task-specific. ``gate_input`` as in :class:`MMoE`.

    Shape contract: input ``(N, ...)``; experts ``(N, D)``; gate t ``(N, task_experts +
    shared_experts)`` summing to one; head t ``(N, num_outputsₜ)``.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "shared_experts": [Interval(Integral, 0, None)],
        "task_experts": [Interval(Integral, 0, None)],
        "gate_input": [Options(GATE_INPUTS)],
        "head_hidden": [Interval(Integral, 1, None), None],
        "input_shape": [list, tuple, None],
    }
    """Each option's allowed values (checked by :func:`mtlkit.models.make_model`)."""

    def __init__(
        self,
        encoder_factory: EncoderFactory,
        tasks: Sequence[Task],
        shared_experts: int = 2,
        task_experts: int = 1,
        gate_input: str = "shared",
        head_hidden: int | None = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__(
            encoder_factory,
            tasks,
            num_levels=1,
            shared_experts=shared_experts,
            task_experts=task_experts,
            gate_input=gate_input,
            head_hidden=head_hidden,
            input_shape=input_shape,
        )


def build_cgc(encoder_factory: EncoderFactory, tasks: Sequence[Task], **options: Any) -> CGC:
    """YAML: ``arch: cgc``; options ``shared_experts`` (2), ``task_experts`` (1), ``gate_input``
    (shared|input), ``head_hidden``, ``input_shape``."""
    return CGC(encoder_factory, tasks, **options)
