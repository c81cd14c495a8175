"""Mixed precision: autocast to bfloat16 or float16, with loss scaling for float16.

``bf16`` keeps float32's exponent range, so gradients need no scaling and it runs on CPU and
GPU. ``fp16`` underflows small gradients unless the loss is scaled up by ``s`` before the
backward pass and the gradients divided by ``s`` before the step (``torch.amp.GradScaler``,
Micikevicius et al., 2018, "Mixed Precision Training"). A balancing strategy receives the
scaled losses, so scaling is exact only for strategies whose update is linear in the losses
(``sums_losses``: EW); fp16 is refused for the others, and on a CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import Tensor

from mtlkit.weighting import Weighting

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast and (for fp16) gradient scaling around the Trainer's steps."""

    def __init__(self, precision: str, device: torch.device, strategy: Weighting) -> None:
        self.name = precision
        self.device = device
        self.scaler: torch.amp.GradScaler | None = None
        if precision != "fp16":
            return
        if device.type != "cuda":
            raise ValueError(
                f"training.precision: fp16 needs a CUDA device (this run is on {device.type}); "
                "use bf16, which needs no loss scaling, or fp32"
            )
        if not strategy.sums_losses:
            raise ValueError(
                f"training.precision: fp16 scales the losses, which changes the update of "
                f"{type(strategy).__name__} (only strategies that sum the losses, such as ew, "
                "are unaffected); use bf16"
            )
        self.scaler = torch.amp.GradScaler("cuda")

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.name])

    def scale_losses(self, losses: Sequence[Tensor | None]) -> list[Tensor | None]:
        if self.scaler is None:
            return list(losses)
        return [None if loss is None else self.scaler.scale(loss) for loss in losses]

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients by the loss scale (before clipping and the penalty)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``; with fp16, skipped when a gradient overflowed (scale lowered)."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()
