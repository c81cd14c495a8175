"""Tiny seeded data and gradient-ownership helpers for the architecture tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtlkit.models import make_encoder, make_model
from mtlkit.models.architectures import OwnedModel
from mtlkit.tasks import Task

TASKS = [Task("a", "multiclass", 3), Task("b", "regression"), Task("c", "binary")]
IMAGE_SHAPE = (1, 16, 16)
TABLE_SHAPE = (6,)

# (registry name, arch_options) — every architecture, with its interesting option variants.
CASES = [
    ("hps", {}),
    ("stl", {}),
    ("mmoe", {"num_experts": 3}),
    ("mmoe", {"num_experts": 2, "gate_input": "input"}),
    ("omoe", {"num_experts": 3}),
    ("omoe", {"num_experts": 2, "gate_input": "input"}),
    ("cgc", {"shared_experts": 2, "task_experts": 1}),
    ("ple", {"num_levels": 2}),
    ("ple", {"num_levels": 3, "shared_experts": 1, "task_experts": 2, "gate_input": "input"}),
    ("dselect_k", {"num_experts": 3, "k": 2}),
    ("cross_stitch", {}),
    ("cross_stitch", {"stitch_after": [0, -1], "granularity": "layer"}),
    ("mtan", {}),
    ("multi_input", {"fusion": "attention"}),
    ("multi_input", {"fusion": "concat", "head_input": {"a": "own"}, "shared_layers": [8]}),
]
CASE_IDS = [f"{a}-{'-'.join(f'{k}={v}' for k, v in o.items()) or 'default'}" for a, o in CASES]


def factory(encoder: str = "mlp"):
    if encoder == "mlp":
        return lambda: make_encoder("mlp", TABLE_SHAPE, hidden=[8, 8])
    return lambda: make_encoder("lenet", IMAGE_SHAPE, out_features=8)


def build(arch: str, options: dict, encoder: str = "mlp", tasks=TASKS) -> nn.Module:
    return make_model(arch, factory(encoder), list(tasks), **options)


def data(encoder: str = "mlp", n: int = 32, seed: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
    """Inputs and learnable targets for the three tasks of ``TASKS``."""
    g = torch.Generator().manual_seed(seed)
    shape = TABLE_SHAPE if encoder == "mlp" else IMAGE_SHAPE
    x = torch.randn(n, *shape, generator=g)
    flat = x.flatten(1)
    w = torch.randn(flat.shape[1], 3, generator=g)
    z = flat @ w / flat.shape[1] ** 0.5
    targets = {
        "a": z.argmax(dim=1),
        "b": z[:, :1] - z[:, 1:2],
        "c": (z[:, 2:3] > 0).float(),
    }
    return x, targets


def losses(model, x, targets, tasks=TASKS) -> dict[str, Tensor]:
    out = model(x)
    return {t.name: t.compute_loss(out[t.name], targets[t.name]) for t in tasks if t.name in out}


def empirical_owners(model, x, targets, tasks=TASKS) -> tuple[dict[str, set], dict[str, float]]:
    """Per parameter: the tasks whose loss reaches it in autograd, and the total |gradient|."""
    named = dict(model.named_parameters())
    owners = {n: set() for n in named}
    magnitude = dict.fromkeys(named, 0.0)
    task_losses = losses(model, x, targets, tasks)
    for name, loss in task_losses.items():
        grads = torch.autograd.grad(
            loss, list(named.values()), retain_graph=True, allow_unused=True
        )
        for n, g in zip(named, grads, strict=True):
            if g is not None:
                owners[n].add(name)
                magnitude[n] += float(g.abs().sum())
    return owners, magnitude


def declared_owners(model) -> dict[str, frozenset] | None:
    return model.parameter_owners() if isinstance(model, OwnedModel) else None
