"""Transfer: freezing, adding tasks to a trained model, loading pretrained encoders.

Typical ``--init-from`` flow (new task ``c`` on a model trained on ``a, b``)::

    model = make_model(arch, factory, old_tasks, **options)
    load_state(model, torch.load(run / "model.pt"))     # strict; clear error on mismatch
    add_task(model, task_c)                              # old outputs unchanged
    freeze_heads(model, ["a", "b"])                      # optional: old heads stay bit-identical
    freeze_trunk(model, stages=2)                        # optional
    optimizer = torch.optim.Adam(param_groups(model, ["c"], lr=1e-3, trunk_lr_scale=0.1))

Freezing sets ``requires_grad = False``; build the optimizer from :func:`trainable_parameters`
(or :func:`param_groups`), and pass only trainable shared parameters to the weighting strategy.
Frozen modules are not put in eval mode: encoders with batch-norm statistics keep updating them
unless you call ``.eval()`` on them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from mtlkit.models.architectures.common import OwnedModel
from mtlkit.models.base import MultiTaskModel, make_head
from mtlkit.models.encoders.staged import stage_list
from mtlkit.models.inputs import WithInputLayer
from mtlkit.tasks import Task


class StateDictMismatch(ValueError):
    """A state dict whose keys or shapes do not match the module it is loaded into."""

    def __init__(
        self,
        target: str,
        missing: Sequence[str],
        unexpected: Sequence[str],
        mismatched: Sequence[str] = (),
        hint: str = "",
    ) -> None:
        self.missing, self.unexpected, self.mismatched = (
            list(missing),
            list(unexpected),
            list(mismatched),
        )
        parts = [f"cannot load the state dict into {target}; nothing was loaded."]
        if self.missing:
            parts.append(f"missing keys ({len(self.missing)}): {', '.join(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected keys ({len(self.unexpected)}): {', '.join(self.unexpected)}")
        if self.mismatched:
            parts.append(f"shape mismatches ({len(self.mismatched)}): {', '.join(self.mismatched)}")
        if hint:
            parts.append(hint)
        super().__init__("\n  ".join(parts))


def _check(module: nn.Module, state: Mapping[str, Tensor], target: str) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
        for k in own
        if k in state
        and hasattr(state[k], "shape")
        and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        hint = ""
        prefixes = {k.split(".", 1)[0] for k in state if "." in k}
        for p in sorted(prefixes):
            stripped = {k[len(p) + 1 :] for k in state if k.startswith(p + ".")}
            if set(own) <= stripped:
                hint = f"hint: the checkpoint's keys under {p!r} match: pass prefix={p!r}"
                break
        raise StateDictMismatch(target, missing, unexpected, mismatched, hint)


def load_state(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Strictly load a whole model's state dict; raise :class:`StateDictMismatch` (listing the
    missing, unexpected and wrongly shaped keys) before loading anything if it does not match."""
    _check(model, state_dict, type(model).__name__)
    model.load_state_dict(state_dict, strict=True)


def _unwrap(model: nn.Module) -> tuple[nn.Module, str]:
    """The architecture behind an input layer (:class:`WithInputLayer`) and the prefix of its
    names in ``model``; ``(model, "")`` for a model without one."""
    if isinstance(model, WithInputLayer):
        return model.model, "model."
    return model, ""


def trunk_encoders(model: nn.Module) -> dict[str, nn.Module]:
    """The encoders built by the encoder factory inside ``model``, by module name.

    HPS: ``encoder``; STL: ``encoders.<task>``; MMoE/CGC/PLE: ``gate_encoder`` and the level-0
    experts; cross-stitch: ``columns.<task>``; MTAN: ``encoder``; multi_input: the branches.
    (Outermost modules with an ``out_features`` attribute that are not linear layers.) Behind an
    input layer: the model's, named ``model.<name>`` (the input layer is not an encoder).
    """
    inner, prefix = _unwrap(model)
    if prefix:
        return {prefix + name: module for name, module in trunk_encoders(inner).items()}
    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if not name or name == "heads" or name.startswith("heads."):
            continue
        if isinstance(module, (nn.Linear, nn.Bilinear)) or not hasattr(module, "out_features"):
            continue
        if any(name.startswith(f + ".") for f in found):
            continue
        found[name] = module
    return found


def load_encoder(
    model: nn.Module,
    state_dict: Mapping[str, Tensor],
    into: str | Sequence[str] | None = None,
    prefix: str | None = None,
) -> list[str]:
    """Load a pretrained encoder's state dict into the trunk encoder(s) of ``model``.

    ``into``: module name(s) to load into (see :func:`trunk_encoders`; behind an input layer the
    model's own names work too); by default every trunk encoder (note that identical experts in
    MMoE-like models then start symmetric). ``prefix``: keep only the checkpoint's keys under
    ``prefix.`` and strip it (e.g. ``"encoder"`` for an HPS checkpoint). Every target is checked
    before anything is loaded: any missing, unexpected or wrongly shaped key raises
    :class:`StateDictMismatch`. Returns the names loaded into.
    """
    if prefix:
        state = {
            k[len(prefix) + 1 :]: v for k, v in state_dict.items() if k.startswith(prefix + ".")
        }
        if not state:
            raise StateDictMismatch(
                f"(prefix {prefix!r})", [], list(state_dict), hint=f"no key starts with {prefix!r}."
            )
    else:
        state = dict(state_dict)
    modules = dict(model.named_modules())
    if into is None:
        targets = trunk_encoders(model)
        if not targets:
            raise ValueError(f"{type(model).__name__}: found no encoder to load into; pass into=")
    else:
        names = [into] if isinstance(into, str) else list(into)
        _, inner_prefix = _unwrap(model)
        names = [
            inner_prefix + n if n not in modules and inner_prefix + n in modules else n
            for n in names
        ]
        unknown = [n for n in names if n not in modules]
        if unknown:
            raise ValueError(f"load_encoder: no module named {', '.join(unknown)} in the model")
        targets = {n: modules[n] for n in names}
    for name, module in targets.items():
        _check(module, state, f"{name!r} ({type(module).__name__})")
    for module in targets.values():
        module.load_state_dict(state, strict=True)
    return list(targets)


def _set_frozen(params: Iterable[tuple[str, nn.Parameter]]) -> list[str]:
    frozen = []
    for name, p in params:
        p.requires_grad_(False)
        frozen.append(name)
    return frozen


def freeze(model: nn.Module, prefixes: Iterable[str]) -> list[str]:
    """Freeze the parameters whose names start with any of ``prefixes``; return their names."""
    prefixes = tuple(prefixes)
    return _set_frozen(
        (n, p)
        for n, p in model.named_parameters()
        if any(n == q or n.startswith(q.rstrip(".") + ".") for q in prefixes)
    )


def freeze_heads(model: nn.Module, tasks: Iterable[str] | None = None) -> list[str]:
    """Freeze the heads of ``tasks`` (default: all heads)."""
    inner, prefix = _unwrap(model)
    names = list(tasks) if tasks is not None else list(inner.heads)
    return freeze(model, [f"{prefix}heads.{t}" for t in names])


def freeze_shared(model: MultiTaskModel) -> list[str]:
    """Freeze ``model.shared_parameters()`` (those receiving several tasks' gradients)."""
    shared = {id(p) for p in model.shared_parameters()}
    return _set_frozen((n, p) for n, p in model.named_parameters() if id(p) in shared)


def freeze_trunk(model: nn.Module, stages: int | None = None) -> list[str]:
    """Freeze the trunk: every parameter outside ``model.heads`` (``stages=None``; an input
    layer's embeddings included), or only the first ``stages`` stages of every staged trunk
    encoder (see :func:`trunk_encoders`).

    Gates, stitch units and attention modules stay trainable with ``stages=k``. Returns the
    names of the frozen parameters.
    """
    if stages is None:
        heads = _unwrap(model)[1] + "heads."
        return _set_frozen((n, p) for n, p in model.named_parameters() if not n.startswith(heads))
    if stages < 0:
        raise ValueError(f"freeze_trunk: stages must be >= 0, got {stages}")
    frozen: list[str] = []
    encoders = trunk_encoders(model)
    staged = {}
    for name, encoder in encoders.items():
        try:
            staged[name] = stage_list(encoder)
        except ValueError:
            continue
    if not staged:
        raise ValueError(f"freeze_trunk(stages=...): {type(model).__name__} has no staged encoder")
    for name, stage_modules in staged.items():
        if stages > len(stage_modules):
            raise ValueError(
                f"freeze_trunk: {name!r} has {len(stage_modules)} stages, cannot freeze {stages}"
            )
        for i in range(stages):
            frozen += _set_frozen(
                (f"{name}.stages.{i}.{n}", p) for n, p in stage_modules[i].named_parameters()
            )
    return frozen


def unfreeze(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(True)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def add_task(model: MultiTaskModel, task: Task, head_hidden: int | None = None, **options: Any):
    """Attach ``task`` (its head and whatever per-task modules the architecture has) in place.

    The old tasks' outputs are unchanged. Architectures with their own ``add_task`` method use
    it (``options`` are passed on); HPS gets a new head; STL a new encoder copied from the first
    task's (trained) encoder, and a new head. Returns ``model``. Call it *before* building the
    optimizer.
    """
    if task.name in model.task_names:
        raise ValueError(f"task {task.name!r} is already in the model")
    method = getattr(model, "add_task", None)
    if method is not None:
        method(task, head_hidden=head_hidden, **options)
        return model
    if options:
        raise ValueError(f"add_task: unknown options {sorted(options)} for {type(model).__name__}")
    if hasattr(model, "encoders") and isinstance(model.encoders, nn.ModuleDict):  # STL
        source = next(iter(model.encoders.values()))
        model.encoders[task.name] = copy.deepcopy(source)
        width = source.out_features
    elif hasattr(model, "encoder"):  # HPS
        width = model.encoder.out_features
    else:
        raise TypeError(f"add_task: {type(model).__name__} does not support adding tasks")
    device = next(model.parameters()).device
    model.heads[task.name] = make_head(width, task, head_hidden).to(device)
    model.tasks = [*model.tasks, task]
    return model


def new_task_parameters(model: nn.Module, tasks: Iterable[str]) -> list[str]:
    """Names of the parameters that belong to ``tasks`` alone (e.g. the tasks just added)."""
    tasks = set(tasks)
    inner, prefix = _unwrap(model)
    if isinstance(inner, OwnedModel):
        owners = inner.parameter_owners()
        return [prefix + n for n, _ in inner.named_parameters() if owners[n] and owners[n] <= tasks]
    prefixes = tuple(f"{prefix}{group}.{t}." for t in tasks for group in ("heads", "encoders"))
    return [n for n, _ in model.named_parameters() if n.startswith(prefixes)]


def param_groups(
    model: nn.Module, new_tasks: Iterable[str], lr: float, trunk_lr_scale: float = 0.1
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the new tasks' own parameters at ``lr``, every other trainable
    parameter at ``lr * trunk_lr_scale`` (0 drops them). Frozen parameters are left out."""
    new = set(new_task_parameters(model, new_tasks))
    fresh = [p for n, p in model.named_parameters() if n in new and p.requires_grad]
    rest = [p for n, p in model.named_parameters() if n not in new and p.requires_grad]
    groups = [{"params": fresh, "lr": lr, "name": "new_tasks"}]
    if rest and trunk_lr_scale > 0:
        groups.append({"params": rest, "lr": lr * trunk_lr_scale, "name": "fine_tune"})
    return groups


__all__ = [
    "StateDictMismatch",
    "add_task",
    "freeze",
    "freeze_heads",
    "freeze_shared",
    "freeze_trunk",
    "load_encoder",
    "load_state",
    "new_task_parameters",
    "param_groups",
    "trainable_parameters",
    "trunk_encoders",
    "unfreeze",
]
