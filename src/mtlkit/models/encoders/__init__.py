"""Encoders (trunks): map an input batch to a flat representation ``(N, out_features)``.

Any ``nn.Module`` with an ``out_features`` attribute works as an encoder. Soft-sharing
architectures also need it *staged* (see :mod:`mtlkit.models.encoders.staged`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from mtlkit.models.encoders.lenet import LeNet
from mtlkit.models.encoders.mlp import MLP
from mtlkit.models.encoders.staged import Staged, stage_list, stage_shapes


def _mlp(input_shape: Sequence[int], **options: Any) -> nn.Module:
    size = 1
    for dim in input_shape:
        size *= int(dim)
    return MLP(size, **options)


def _lenet(input_shape: Sequence[int], **options: Any) -> nn.Module:
    channels, side = (1, input_shape[-1]) if len(input_shape) == 2 else input_shape[0::2]
    return LeNet(in_channels=int(channels), image_size=int(side), **options)


ENCODERS: dict[str, Callable[..., nn.Module]] = {"mlp": _mlp, "lenet": _lenet}


def make_encoder(name: str, input_shape: Sequence[int], **options: Any) -> nn.Module:
    """Build a registered encoder for inputs of ``input_shape`` (without the batch dimension)."""
    if name not in ENCODERS:
        close = difflib.get_close_matches(name, ENCODERS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"model.encoder: unknown encoder {name!r}{hint}; choose from {', '.join(ENCODERS)}"
        )
    try:
        return ENCODERS[name](input_shape, **options)
    except TypeError as err:
        raise ValueError(f"model.encoder_options: bad options for {name!r}: {err}") from None


__all__ = [
    "ENCODERS",
    "MLP",
    "LeNet",
    "Staged",
    "make_encoder",
    "stage_list",
    "stage_shapes",
]
