"""Multi-layer perceptron encoder for tabular inputs."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class MLP(nn.Module):
    """``Linear → ReLU (→ Dropout)`` blocks; ``out_features`` is the last hidden size.

    Staged: ``stages[i]`` is the i-th block (the first one flattens its input), so
    ``forward(x)`` equals applying ``stages`` in order. Input ``(N, in_features)`` (or any shape
    that flattens to it), output ``(N, out_features)``.
    """

    def __init__(
        self, in_features: int, hidden: Sequence[int] = (64, 64), dropout: float = 0.0
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("model.hidden: an MLP encoder needs at least one hidden layer")
        stages: list[nn.Module] = []
        width = int(in_features)
        for i, size in enumerate(hidden):
            layers: list[nn.Module] = [nn.Flatten()] if i == 0 else []
            layers += [nn.Linear(width, int(size)), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            stages.append(nn.Sequential(*layers))
            width = int(size)
        self.stages = nn.ModuleList(stages)
        self.input_shape: tuple[int, ...] = (int(in_features),)
        self.out_features = width

    def forward(self, x: Tensor) -> Tensor:
        for stage in self.stages:
            x = stage(x)
        return x
