"""LeNet-style convolutional encoder (as used for MultiMNIST by Sener & Koltun, 2018)."""

from __future__ import annotations

from torch import Tensor, nn


class _AddChannel(nn.Module):
    """``(N, H, W)`` → ``(N, 1, H, W)``; leaves 4-d inputs alone."""

    def forward(self, x: Tensor) -> Tensor:
        return x.unsqueeze(1) if x.dim() == 3 else x


class LeNet(nn.Module):
    """``conv(10, 5) → pool → ReLU → conv(20, 5) → pool → ReLU → Linear(out_features) → ReLU``.

    Input: ``(N, C, H, W)`` images (or ``(N, H, W)`` for one channel); output:
    ``(N, out_features)``. Staged, with three stages: ``(10, s₁, s₁)``, ``(20, s₂, s₂)`` and
    ``(out_features,)`` where ``s₁ = (H − 4) // 2`` and ``s₂ = (s₁ − 4) // 2``.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, out_features: int = 50) -> None:
        super().__init__()
        side = ((image_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"LeNet needs images of at least 12 pixels, got {image_size}")
        self.stages = nn.ModuleList(
            [
                nn.Sequential(
                    _AddChannel(),
                    nn.Conv2d(in_channels, 10, kernel_size=5),
                    nn.MaxPool2d(2),
                    nn.ReLU(),
                ),
                nn.Sequential(nn.Conv2d(10, 20, kernel_size=5), nn.MaxPool2d(2), nn.ReLU()),
                nn.Sequential(nn.Flatten(), nn.Linear(20 * side * side, out_features), nn.ReLU()),
            ]
        )
        self.input_shape: tuple[int, ...] = (int(in_channels), int(image_size), int(image_size))
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        for stage in self.stages:
            x = stage(x)
        return x
