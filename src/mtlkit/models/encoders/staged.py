"""Encoders given as a sequence of stages.

Soft-sharing architectures (cross-stitch, MTAN) and stage-wise freezing need to run an encoder one
stage at a time. An encoder is *staged* when it has a ``stages`` attribute (an ``nn.ModuleList``)
and ``forward(x)`` equals applying the stages in order. :class:`MLP`, :class:`LeNet` and
:class:`Staged` are staged; wrap your own layers in :class:`Staged` to use them.

Shape contract: stage ``i`` maps ``(N, *shapeᵢ₋₁)`` to ``(N, *shapeᵢ)``, where a shape is either
``(Dᵢ,)`` (vectors) or ``(Cᵢ, *spatial)`` (channels first, 1 to 3 spatial dimensions). The last
stage returns ``(N, out_features)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class Staged(nn.Module):
    """An encoder made of a user's list of stages, applied in order.

    Parameters
    ----------
    stages:
        The stages, each an ``nn.Module``.
    input_shape:
        Shape of one input without the batch dimension. Needed by the architectures that must
        know every stage's output shape (cross-stitch, MTAN, raw-input gates) and to infer
        ``out_features``.
    out_features:
        Size of the (flat) output; inferred with a dry run when ``input_shape`` is given.
    """

    def __init__(
        self,
        stages: Sequence[nn.Module],
        input_shape: Sequence[int] | None = None,
        out_features: int | None = None,
    ) -> None:
        super().__init__()
        if len(stages) == 0:
            raise ValueError("Staged: needs at least one stage")
        self.stages = nn.ModuleList(stages)
        self.input_shape = tuple(int(d) for d in input_shape) if input_shape is not None else None
        if out_features is None:
            if self.input_shape is None:
                raise ValueError("Staged: give out_features or input_shape (to infer it)")
            last = stage_shapes(self)[-1]
            if len(last) != 1:
                raise ValueError(
                    f"Staged: the last stage must return (N, features), got (N, {last})"
                )
            out_features = last[0]
        self.out_features = int(out_features)

    def forward(self, x: Tensor) -> Tensor:
        for stage in self.stages:
            x = stage(x)
        return x


def stage_list(encoder: nn.Module) -> nn.ModuleList:
    """The stages of a staged encoder: ``encoder.stages``, or an ``nn.Sequential``'s children."""
    stages = getattr(encoder, "stages", None)
    if isinstance(stages, nn.ModuleList):
        return stages
    if isinstance(encoder, nn.Sequential):
        return nn.ModuleList(encoder.children())
    raise ValueError(
        f"{type(encoder).__name__} is not a staged encoder: it needs a `stages` nn.ModuleList "
        "(MLP and LeNet have one); wrap your layers as "
        "mtlkit.models.encoders.Staged([stage1, stage2, ...], input_shape=...)"
    )


def encoder_input_shape(
    encoder: nn.Module, input_shape: Sequence[int] | None = None, purpose: str = ""
) -> tuple[int, ...]:
    """``input_shape`` if given, else the encoder's own ``input_shape`` attribute."""
    shape = input_shape if input_shape is not None else getattr(encoder, "input_shape", None)
    if shape is None:
        raise ValueError(
            f"{purpose or 'this architecture'} needs the input shape: give the encoder an "
            "`input_shape` attribute (MLP, LeNet and Staged have one) or pass the "
            "`input_shape` option"
        )
    return tuple(int(d) for d in shape)


@torch.no_grad()
def stage_shapes(
    encoder: nn.Module, input_shape: Sequence[int] | None = None
) -> list[tuple[int, ...]]:
    """Output shape (without the batch dimension) of every stage, found by a dry run."""
    stages = stage_list(encoder)
    shape = encoder_input_shape(encoder, input_shape, "finding the stage shapes")
    was_training = encoder.training
    encoder.eval()
    try:
        param = next(encoder.parameters(), None)
        x = torch.zeros(2, *shape, device=param.device if param is not None else None)
        shapes = []
        for stage in stages:
            x = stage(x)
            shapes.append(tuple(x.shape[1:]))
    finally:
        encoder.train(was_training)
    return shapes
