"""Sharing architectures, by name.

A new architecture is one file plus one line in ``ARCHITECTURES``.

Every builder is called as ``builder(encoder_factory, tasks, **options)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

from mtlkit._param_validation import validate_params
from mtlkit.models.architectures.cgc import CGC, build_cgc
from mtlkit.models.architectures.common import OwnedModel, describe
from mtlkit.models.architectures.cross_stitch import CrossStitch, build_cross_stitch
from mtlkit.models.architectures.dselect_k import DSelectK, build_dselect_k
from mtlkit.models.architectures.hps import HardParameterSharing, build_hps
from mtlkit.models.architectures.mmoe import MMoE, build_mmoe
from mtlkit.models.architectures.mtan import MTAN, build_mtan
from mtlkit.models.architectures.multi_input import MultiInputFusion, build_multi_input
from mtlkit.models.architectures.omoe import OMoE, build_omoe
from mtlkit.models.architectures.ple import ProgressiveLayeredExtraction, build_ple
from mtlkit.models.architectures.stl import SingleTaskModels, build_stl
from mtlkit.models.base import EncoderFactory, MultiTaskModel
from mtlkit.tasks import Task

ARCHITECTURES: dict[str, Callable[..., MultiTaskModel]] = {
    "hps": build_hps,
    "stl": build_stl,
    "mmoe": build_mmoe,
    "omoe": build_omoe,
    "cgc": build_cgc,
    "ple": build_ple,
    "dselect_k": build_dselect_k,
    "cross_stitch": build_cross_stitch,
    "mtan": build_mtan,
    "multi_input": build_multi_input,
}

ARCHITECTURE_CLASSES: dict[str, type[MultiTaskModel]] = {
    "hps": HardParameterSharing,
    "stl": SingleTaskModels,
    "mmoe": MMoE,
    "omoe": OMoE,
    "cgc": CGC,
    "ple": ProgressiveLayeredExtraction,
    "dselect_k": DSelectK,
    "cross_stitch": CrossStitch,
    "mtan": MTAN,
    "multi_input": MultiInputFusion,
}
"""The class each builder returns; it declares its options' ``_parameter_constraints``."""


def check_arch_options(arch: str, options: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming ``model.arch_options.<name>`` for an unknown or bad option.

    An unknown ``arch`` is left to :func:`make_model` (which suggests a close name).
    """
    if arch in ARCHITECTURE_CLASSES:
        constraints = ARCHITECTURE_CLASSES[arch]._parameter_constraints  # type: ignore[attr-defined]
        validate_params(constraints, options, f"model {arch!r}: model.arch_options")


def make_model(
    arch: str, encoder_factory: EncoderFactory, tasks: Sequence[Task], **options: Any
) -> MultiTaskModel:
    """Build the architecture registered as ``arch``."""
    if arch not in ARCHITECTURES:
        close = difflib.get_close_matches(arch, ARCHITECTURES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"model.arch: unknown architecture {arch!r}{hint}; "
            f"choose from {', '.join(ARCHITECTURES)}"
        )
    check_arch_options(arch, options)
    try:
        return ARCHITECTURES[arch](encoder_factory, tasks, **options)
    except TypeError as err:
        raise ValueError(f"model.arch_options: bad options for {arch!r}: {err}") from None


__all__ = [
    "ARCHITECTURES",
    "ARCHITECTURE_CLASSES",
    "CGC",
    "MMoE",
    "MTAN",
    "OMoE",
    "CrossStitch",
    "DSelectK",
    "HardParameterSharing",
    "MultiInputFusion",
    "OwnedModel",
    "ProgressiveLayeredExtraction",
    "SingleTaskModels",
    "check_arch_options",
    "describe",
    "make_model",
]
