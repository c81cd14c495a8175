"""DSelect-k (Hazimeh et al., NeurIPS 2021): MMoE with differentiable sparse top-k gates."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any, ClassVar

from mtlkit._param_validation import Interval, Options
from mtlkit.models.architectures.mmoe import MMoE
from mtlkit.models.architectures.ple import GATE_INPUTS
from mtlkit.models.base import EncoderFactory
from mtlkit.tasks import Task


class DSelectK(MMoE):
    """MMoE whose per-task gates are DSelect-k gates (per-example variant).

    Each gate combines ``k`` selectors; selector i picks an expert through a binary code of
    ``⌈log₂ E⌉`` smooth-step switches (``gamma`` sets the width of the smooth region: once the
    switches leave it, the selection is exactly sparse). Gate weights are non-negative and sum
    to one; at most ``k`` experts get weight once the switches have saturated. The entropy
    regulariser of the paper is not applied.

    Shape contract as :class:`MMoE`: experts ``(N, D)``, gate t ``(N, E)``, head t
    ``(N, num_outputsₜ)``.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "num_experts": [Interval(Integral, 1, None)],
        "k": [Interval(Integral, 1, None)],
        "gamma": [Interval(Real, 0, None, closed="neither")],
        "gate_input": [Options(GATE_INPUTS)],
        "head_hidden": [Interval(Integral, 1, None), None],
        "input_shape": [list, tuple, None],
    }
    """Each option's allowed values (checked by :func:`mtlkit.models.make_model`)."""

    def __init__(
        self,
        encoder_factory: EncoderFactory,
        tasks: Sequence[Task],
        num_experts: int = 4,
        k: int = 2,
        gamma: float = 1.0,
        gate_input: str = "shared",
        head_hidden: int | None = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__(
            encoder_factory,
            tasks,
            num_experts=num_experts,
            gate_input=gate_input,
            head_hidden=head_hidden,
            input_shape=input_shape,
            gate="dselect",
            gate_options={"k": k, "gamma": gamma},
        )


def build_dselect_k(
    encoder_factory: EncoderFactory, tasks: Sequence[Task], **options: Any
) -> DSelectK:
    """YAML: ``arch: dselect_k``; options ``num_experts`` (4), ``k`` (2), ``gamma`` (1.0),
    ``gate_input`` (shared|input), ``head_hidden``, ``input_shape``."""
    return DSelectK(encoder_factory, tasks, **options)
