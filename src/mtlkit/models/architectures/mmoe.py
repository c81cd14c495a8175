"""Multi-gate Mixture-of-Experts (MMoE; Ma et al., KDD 2018)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any, ClassVar

from mtlkit._param_validation import Interval, Options
from mtlkit.models.architectures.common import GATES
from mtlkit.models.architectures.ple import GATE_INPUTS, ProgressiveLayeredExtraction
from mtlkit.models.base import EncoderFactory
from mtlkit.tasks import Task


class MMoE(ProgressiveLayeredExtraction):
    """``outputₜ = headₜ(Σₑ gₜ(z)ₑ · expertₑ(x))`` with one softmax gate per task.

    The ``num_experts`` experts are encoders built by the user's ``encoder_factory`` (so MMoE
    works for any encoder: MLPs on tables, CNNs on images); they are shared. Gate t is
    ``softmax(Wₜ z + bₜ)`` and is task-specific; ``z`` is the raw input flattened
    (``gate_input: input``, as in the paper) or the output of one extra shared gate encoder
    (``gate_input: shared``, the default, better suited to images).

    Shape contract: input ``(N, ...)``; each expert gives ``(N, D)``; gate t gives ``(N, E)``
    summing to one; head t gives ``(N, num_outputsₜ)``.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "num_experts": [Interval(Integral, 1, None)],
        "gate_input": [Options(GATE_INPUTS)],
        "head_hidden": [Interval(Integral, 1, None), None],
        "input_shape": [list, tuple, None],
        "gate": [Options(tuple(GATES))],
        "gate_options": [dict, None],
    }
    """Each option's allowed values (checked by :func:`mtlkit.models.make_model`)."""

    def __init__(
        self,
        encoder_factory: EncoderFactory,
        tasks: Sequence[Task],
        num_experts: int = 4,
        gate_input: str = "shared",
        head_hidden: int | None = None,
        input_shape: Sequence[int] | None = None,
        gate: str = "softmax",
        gate_options: Mapping[str, Any] | None = None,
    ) -> None:
        if num_experts < 1:
            raise ValueError(f"model.arch_options.num_experts must be >= 1, got {num_experts}")
        super().__init__(
            encoder_factory,
            tasks,
            num_levels=1,
            shared_experts=num_experts,
            task_experts=0,
            gate_input=gate_input,
            gate=gate,
            gate_options=gate_options,
            head_hidden=head_hidden,
            input_shape=input_shape,
        )

    @property
    def experts(self):
        return self.shared_experts[0]


def build_mmoe(encoder_factory: EncoderFactory, tasks: Sequence[Task], **options: Any) -> MMoE:
    """YAML: ``arch: mmoe``; options ``num_experts`` (4), ``gate_input`` (shared|input),
    ``head_hidden``, ``input_shape``."""
    return MMoE(encoder_factory, tasks, **options)
