"""Hard parameter sharing (Caruana, 1997): one shared encoder, one head per task."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from numbers import Integral
from typing import ClassVar

from torch import Tensor, nn

from mtlkit._param_validation import Interval
from mtlkit.models.base import EncoderFactory, Inputs, MultiTaskModel, make_head
from mtlkit.tasks import Task


class HardParameterSharing(MultiTaskModel):
    """``outputₜ = headₜ(encoder(x))``.

    Shape contract: ``encoder`` maps ``(N, ...)`` to ``(N, D)``; each head maps ``(N, D)`` to
    ``(N, num_outputsₜ)``. With multi-input data each task's own input goes through the same
    encoder.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "head_hidden": [Interval(Integral, 1, None), None],
    }
    """Each option's allowed values (checked by :func:`mtlkit.models.make_model`)."""

    def __init__(
        self, encoder: nn.Module, tasks: Sequence[Task], head_hidden: int | None = None
    ) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.encoder = encoder
        self.heads = nn.ModuleDict(
            {t.name: make_head(encoder.out_features, t, head_hidden) for t in self.tasks}
        )

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.encoder.parameters()

    def last_shared_modules(self) -> list[nn.Module]:
        return [self.encoder]

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def forward_with_representation(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Outputs and the shared representation they are computed from (one encoder pass)."""
        representation = self.encoder(x)
        return {name: head(representation) for name, head in self.heads.items()}, representation

    def forward(self, x: Inputs) -> dict[str, Tensor]:
        if isinstance(x, Mapping):
            return {name: self.heads[name](self.encoder(xt)) for name, xt in x.items()}
        representation = self.encoder(x)
        return {name: head(representation) for name, head in self.heads.items()}


def build_hps(
    encoder_factory: EncoderFactory, tasks: Sequence[Task], head_hidden: int | None = None
) -> HardParameterSharing:
    return HardParameterSharing(encoder_factory(), tasks, head_hidden=head_hidden)
