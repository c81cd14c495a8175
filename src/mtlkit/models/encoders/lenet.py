"""LeNet-style convolutional encoder (as used for MultiMNIST by Sener & Koltun, 2018)."""

from __future__ import annotations

from torch import Tensor, nn


class LeNet(nn.Module):
    """``conv(10, 5) → pool → ReLU → conv(20, 5) → pool → ReLU → Linear(out_features)``.

    Input: ``(N, C, H, W)`` images; output: ``(N, out_features)``.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, out_features: int = 50) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 10, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(10, 20, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(),
        )
        side = ((image_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"LeNet needs images of at least 12 pixels, got {image_size}")
        self.fc = nn.Sequential(nn.Linear(20 * side * side, out_features), nn.ReLU())
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.fc(self.features(x).flatten(1))
