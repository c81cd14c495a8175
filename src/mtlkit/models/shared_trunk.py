"""Your own trunk and heads as a multi-task model, in one line."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from torch import Tensor, nn

from mtlkit.models.base import Inputs, MultiTaskModel


class SharedTrunk(MultiTaskModel):
    """``outputₜ = headₜ(trunk(x))``: the ``trunk``'s parameters are shared by every task, each
    head's belong to its task (hard parameter sharing, Caruana, 1997, over any modules).

    Parameters
    ----------
    trunk:
        Any ``nn.Module`` mapping a batch of inputs to the representation the heads read.
    heads:
        ``{task name: nn.Module}``, one head per task, reading the trunk's output.

    With multi-input data (``x`` a mapping ``{task: input}``) each task's input goes through the
    trunk and its own head. Strategies measuring gradient norms at the last shared layer
    (GradNorm) use the trunk's last module with parameters.

    Example
    -------
    >>> import torch
    >>> from torch import nn
    >>> model = SharedTrunk(nn.Linear(5, 16), heads={"a": nn.Linear(16, 1), "b": nn.Linear(16, 3)})
    >>> sorted(model(torch.randn(4, 5)))
    ['a', 'b']
    """

    def __init__(self, trunk: nn.Module, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        if not isinstance(trunk, nn.Module):
            raise TypeError(f"SharedTrunk: trunk must be an nn.Module, got {type(trunk).__name__}")
        if not heads:
            raise ValueError("SharedTrunk: heads must name at least one task")
        for name, head in heads.items():
            if not isinstance(head, nn.Module):
                raise TypeError(
                    f"SharedTrunk: head of task {name!r} must be an nn.Module, "
                    f"got {type(head).__name__}"
                )
        self.trunk = trunk
        self.heads = nn.ModuleDict(dict(heads))
        shared = {id(p) for p in trunk.parameters()}
        for name, head in self.heads.items():
            if any(id(p) in shared for p in head.parameters()):
                raise ValueError(
                    f"SharedTrunk: head of task {name!r} holds trunk parameters; a head's "
                    "parameters must be its own"
                )

    @property
    def task_names(self) -> list[str]:
        return list(self.heads)

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.trunk.parameters()

    def last_shared_modules(self) -> list[nn.Module]:
        return [self.trunk]

    def forward_with_representation(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Outputs and the shared representation they are computed from (one trunk pass)."""
        representation = self.trunk(x)
        return {name: head(representation) for name, head in self.heads.items()}, representation

    def forward(self, x: Inputs) -> dict[str, Tensor]:
        if isinstance(x, Mapping):
            return {name: self.heads[name](self.trunk(xt)) for name, xt in x.items()}
        return self.forward_with_representation(x)[0]
