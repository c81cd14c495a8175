"""Multi-layer perceptron encoder for tabular inputs."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class MLP(nn.Module):
    """``Linear → ReLU (→ Dropout)`` blocks; ``out_features`` is the last hidden size."""

    def __init__(
        self, in_features: int, hidden: Sequence[int] = (64, 64), dropout: float = 0.0
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("model.hidden: an MLP encoder needs at least one hidden layer")
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, int(size)), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(size)
        self.layers = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x.flatten(1))
