"""Building blocks shared by the sharing architectures: ownership bookkeeping, gates, ``describe``.

*Ownership*: a parameter's owners are the tasks whose loss reaches it through the autograd graph.
A parameter with more than one owner is *shared* (its per-task gradients are combined by the
weighting strategy); one with a single owner is *task-specific*. Architectures derived from
:class:`OwnedModel` declare their owners structurally, and ``shared_parameters()`` follows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from mtlkit.models.base import Inputs, MultiTaskModel

Owners = frozenset[str]


class OwnedModel(MultiTaskModel):
    """A :class:`MultiTaskModel` that declares which tasks own each parameter.

    Subclasses implement :meth:`_ownership` (``(module or parameter, owner tasks)`` pairs; a
    parameter listed several times gets the union) and :meth:`_forward` (all tasks on one input
    tensor). ``forward`` of multi-input data runs each task's input on its own and keeps that
    task's output.
    """

    def _ownership(self) -> Iterable[tuple[nn.Module | nn.Parameter, Iterable[str]]]:
        raise NotImplementedError

    def _forward(self, x: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def forward(self, x: Inputs) -> dict[str, Tensor]:
        if isinstance(x, Mapping):
            return {name: self._forward(xt)[name] for name, xt in x.items()}
        return self._forward(x)

    def parameter_owners(self) -> dict[str, Owners]:
        """``{parameter name: tasks whose loss reaches it}`` for every parameter."""
        by_id: dict[int, set[str]] = {}
        for item, owners in self._ownership():
            params = [item] if isinstance(item, nn.Parameter) else list(item.parameters())
            for p in params:
                by_id.setdefault(id(p), set()).update(owners)
        return {name: frozenset(by_id.get(id(p), ())) for name, p in self.named_parameters()}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        owners = self.parameter_owners()
        return (p for name, p in self.named_parameters() if len(owners[name]) > 1)

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """The parameters owned by ``task`` alone."""
        owners = self.parameter_owners()
        return (p for name, p in self.named_parameters() if owners[name] == {task})


def flat_size(shape: Sequence[int]) -> int:
    return int(math.prod(int(d) for d in shape))


def mlp(in_features: int, hidden: Sequence[int]) -> nn.Sequential:
    """``Linear → ReLU`` blocks (an empty ``hidden`` gives the identity)."""
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, int(size)), nn.ReLU()]
        width = int(size)
    return nn.Sequential(*layers)


class SoftmaxGate(nn.Module):
    """``softmax(W flatten(z) + b)``: weights ``(N, num_experts)`` that sum to one."""

    def __init__(self, in_features: int, num_experts: int) -> None:
        super().__init__()
        self.num_experts = num_experts
        self.linear = nn.Linear(in_features, num_experts)

    def forward(self, z: Tensor) -> Tensor:
        return self.linear(z.flatten(1)).softmax(dim=-1)


class DSelectGate(nn.Module):
    """Per-example DSelect-k gate (Hazimeh et al., 2021): a differentiable top-k selection.

    ``k`` selectors each pick one of the ``2ᵐ`` binary codes (``m = ⌈log₂ E⌉``) through ``m``
    smooth-step switches ``S(zᵢⱼ)``; a softmax over the ``k`` selectors mixes them. When ``E`` is
    not a power of two, code ``c ≥ E`` stands for expert ``c mod E``, so the weights always sum
    to one. Once the switches saturate at most ``k`` experts have non-zero weight.
    """

    def __init__(self, in_features: int, num_experts: int, k: int = 2, gamma: float = 1.0) -> None:
        super().__init__()
        if num_experts < 1 or k < 1:
            raise ValueError("dselect gate: num_experts and k must be >= 1")
        self.num_experts, self.k, self.gamma = num_experts, k, float(gamma)
        self.num_bits = max(1, math.ceil(math.log2(num_experts)))
        num_codes = 2**self.num_bits
        codes = [[(c >> j) & 1 for j in range(self.num_bits)] for c in range(num_codes)]
        assign = torch.zeros(num_codes, num_experts)
        assign[torch.arange(num_codes), torch.arange(num_codes) % num_experts] = 1.0
        self.register_buffer("codes", torch.tensor(codes, dtype=torch.float32), persistent=False)
        self.register_buffer("assign", assign, persistent=False)
        self.z = nn.Linear(in_features, k * self.num_bits)
        self.w = nn.Linear(in_features, k)
        bound = self.gamma / 2
        nn.init.uniform_(self.z.weight, -bound / max(1, in_features), bound / max(1, in_features))
        nn.init.uniform_(self.z.bias, -bound, bound)

    def smooth_step(self, t: Tensor) -> Tensor:
        g = self.gamma
        inner = -2 / g**3 * t**3 + 3 / (2 * g) * t + 0.5
        return torch.where(t <= -g / 2, torch.zeros_like(t), torch.where(t >= g / 2, 1.0, inner))

    def forward(self, z: Tensor) -> Tensor:
        z = z.flatten(1)
        s = self.smooth_step(self.z(z)).view(-1, self.k, 1, self.num_bits)  # (N, k, 1, m)
        codes = self.codes.to(s.dtype)  # (2^m, m)
        per_bit = codes * s + (1 - codes) * (1 - s)  # (N, k, 2^m, m)
        selectors = per_bit.prod(dim=-1) @ self.assign.to(s.dtype)  # (N, k, E)
        mix = self.w(z).softmax(dim=-1).unsqueeze(-1)  # (N, k, 1)
        return (mix * selectors).sum(dim=1)


GATES = {"softmax": SoftmaxGate, "dselect": DSelectGate}


def make_gate(kind: str, in_features: int, num_experts: int, **options) -> nn.Module:
    if kind not in GATES:
        raise ValueError(
            f"model.arch_options.gate: unknown gate {kind!r}; choose from softmax, dselect"
        )
    return GATES[kind](in_features, num_experts, **options)


def mix_experts(weights: Tensor, outputs: Sequence[Tensor]) -> Tensor:
    """``Σₑ weights[:, e] · outputsₑ`` for expert outputs of any (equal) shape."""
    stacked = torch.stack(list(outputs), dim=1)  # (N, E, ...)
    shape = weights.shape + (1,) * (stacked.dim() - 2)
    return (weights.view(shape) * stacked).sum(dim=1)


def _count(params: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)


def describe(model: nn.Module, depth: int = 2) -> str:
    """A readable summary: class, parameter counts (total, shared, per task) and the modules.

    Works for any :class:`MultiTaskModel`; owners per module are shown for :class:`OwnedModel`.
    A model behind an input layer (:class:`~mtlkit.models.inputs.WithInputLayer`) shows the
    layer, then the model as it describes alone; the embedding tables of every
    :class:`~mtlkit.models.inputs.TabularInput` are listed (``column: rows × dim = parameters``).
    """
    from mtlkit.models.inputs import TabularInput, WithInputLayer  # it imports this package

    total = _count(model.parameters())
    trainable = _count(p for p in model.parameters() if p.requires_grad)
    lines = [f"{type(model).__name__}: {total:,} parameters"]
    if trainable != total:
        lines[0] += f" ({trainable:,} trainable)"
    if isinstance(model, WithInputLayer):
        shared = _count(model.shared_parameters())
        layer = model.input_layer
        lines.append(f"  shared: {shared:,}   task-specific: {total - shared:,}")
        lines.append(
            f"  input_layer: {type(layer).__name__}, {_count(layer.parameters()):,} parameters, "
            "shared by every task"
        )
        if isinstance(layer, TabularInput):
            summary, *tables = _tabular_input_lines(layer)
            lines += ["    " + summary, *("  " + line for line in tables)]
        first, *rest = describe(model.model, depth).splitlines()
        return "\n".join([*lines, f"  model: {first}", *("  " + line for line in rest)])
    owners: dict[str, Owners] | None = None
    if isinstance(model, OwnedModel):
        owners = model.parameter_owners()
    if isinstance(model, MultiTaskModel):
        shared = _count(model.shared_parameters())
        lines.append(f"  shared: {shared:,}   task-specific: {total - shared:,}")
        if owners is not None:
            per_task = {
                t: sum(p.numel() for n, p in model.named_parameters() if owners[n] == {t})
                for t in model.task_names
            }
            lines.append(
                "  own parameters per task: " + ", ".join(f"{t} {c:,}" for t, c in per_task.items())
            )
        lines.append("  tasks: " + ", ".join(model.task_names))
    lines.append("  modules:")
    params = dict(model.named_parameters())
    rows: list[tuple[str, str, int, str]] = []
    for name, module in model.named_modules():
        level = name.count(".") + 1 if name else 0
        if not name or level > depth:
            continue
        names = [f"{name}.{n}" for n, _ in module.named_parameters()]
        count = sum(params[n].numel() for n in names if n in params)
        if count == 0:
            continue
        who = ""
        if owners is not None:
            kinds = [owners.get(n, frozenset()) for n in names]
            n_shared = sum(len(k) > 1 for k in kinds)
            if n_shared == len(kinds):
                who = "shared"
            elif n_shared:
                who = "shared + task-specific"
            else:
                tasks = sorted(set().union(*kinds))
                who = (
                    f"task-specific ({', '.join(tasks)})"
                    if len(tasks) > 1
                    else (tasks[0] if tasks else "unused")
                )
        rows.append(("  " * level + name, type(module).__name__, count, who))
    width = max((len(r[0]) for r in rows), default=0)
    kind_width = max((len(r[1]) for r in rows), default=0)
    for name, kind, count, who in rows:
        lines.append(f"  {name:<{width}}  {kind:<{kind_width}}  {count:>10,}  {who}".rstrip())
    for name, module in model.named_modules():  # e.g. each task encoder's own (STL)
        if isinstance(module, TabularInput):
            summary, *tables = _tabular_input_lines(module)
            lines += [f"  {name}: {summary}", *tables]
    return "\n".join(lines)


def _tabular_input_lines(layer: nn.Module) -> list[str]:
    """``n dense features + k code columns -> width``, then one line per embedding table."""
    k = len(layer.columns)
    lines = [
        f"{layer.n_dense} dense features + {k} code column{'' if k == 1 else 's'} "
        f"-> {layer.out_features} features"
    ]
    for column, rows, dim in zip(layer.columns, layer.num_embeddings, layer.dims, strict=True):
        lines.append(f"    {column}: {rows:,} rows × {dim} = {rows * dim:,}")
    return lines
