"""A checkpointable random source for the randomised strategies."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class SeededMixin(nn.Module):
    """Holds a CPU ``torch.Generator`` seeded with ``seed`` (``None``: from OS entropy, leaving
    torch's global generator untouched); its state is saved in
    ``state_dict`` (extra state) so that a restored strategy draws the same future numbers."""

    def _init_generator(self, seed: int | None) -> None:
        self.seed = seed
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()  # fresh entropy for this generator only, not torch's global one
        else:
            self.generator.manual_seed(int(seed))

    def get_extra_state(self) -> Any:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: Any) -> None:
        self.generator.set_state(state["generator"])
