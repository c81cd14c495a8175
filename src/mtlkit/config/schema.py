"""The run configuration: nested dataclasses, read from YAML and command-line flags.

Every field has a default, so an empty config is valid. Unknown keys, wrong types and out-of-range
values raise :class:`ConfigError` naming the field (``optim.lr``) and what was expected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib
import math
import types
import typing
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

from mtlkit._param_validation import Interval, Options


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


@dataclass
class TableTaskConfig:
    name: str = ""
    kind: str = "regression"
    column: str | None = None
    """Target column (default: the task name); multilabel: 0/1 columns joined by ``+``."""


@dataclass
class DataConfig:
    dataset: str = "penguins"
    """A built-in dataset name (see ``mtlkit.data.DATASETS``); ignored when ``path`` is set."""
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword options of the dataset loader, e.g. ``{n_train: 2000}``."""
    path: str | None = None
    """A CSV or Parquet file of the user's own data."""
    tasks: list[TableTaskConfig] = field(default_factory=list)
    """With ``path``: the tasks and their target columns."""
    features: list[str] | None = None
    """With ``path``: feature columns (default: every column that is not a target/id/split)."""
    categorical: list[str] = field(default_factory=list)
    """Feature columns to encode as categories even if they look numeric."""
    na_values: list[str] = field(default_factory=list)
    """Cell texts that mean "missing" besides an empty cell (e.g. ``[NA, "?"]``)."""
    onehot_max: int = 10
    """A categorical column with at most this many kept categories is one-hot encoded; above,
    it feeds a learned embedding (a code column)."""
    max_categories: int = 100_000
    """Categories kept per column at most: the most frequent (ties by label); the rest share
    code 0, "other" (below ``2**24``)."""
    min_frequency: int = 1
    """Values seen fewer times in the training rows are "other"."""
    hash_buckets: dict[str, int] = field(default_factory=dict)
    """``{column: N}``: hash a categorical column's values into N embedding rows (no vocabulary)."""
    embedding_dim: dict[str, int] = field(default_factory=dict)
    """``{column: d}``: embedding width of a categorical column (default
    ``min(32, round(1.6 * n ** 0.56))``, n its embedding rows)."""
    id_column: str | None = None
    split: str = "random"
    """``random``, ``stratified`` (on the task ``stratify``), ``column`` (``split_column``) or
    ``hash`` (by a hash of ``id_column`` or the row number: how a stream splits)."""
    val_size: float = 0.15
    test_size: float = 0.15
    stratify: str | None = None
    split_column: str | None = None
    batch_size: int = 64
    sampling: str = "joint"
    """Multi-input data only: ``joint``, ``round_robin`` or ``proportional``."""
    stream: bool = False
    """Read ``path`` (a file, a directory or a glob of Parquet/CSV files) in chunks instead of
    whole: the table never sits in memory (``mtlkit train --stream``)."""
    stream_chunk_rows: int = 65_536
    """With ``stream``: the most rows read at once (one record batch)."""
    shuffle_buffer: int = 65_536
    """With ``stream``: rows held in the bounded shuffle buffer (0: each unit's rows shuffled
    alone, in a shuffled order of units)."""
    num_workers: int = 0
    """With ``stream``: DataLoader worker processes reading units ahead (0: the training
    process reads them); the batches do not depend on it."""


@dataclass
class ModelConfig:
    arch: str = "hps"
    encoder: str | None = None
    """``mlp``, ``lenet``...; default: the dataset's own choice."""
    encoder_options: dict[str, Any] = field(default_factory=dict)
    arch_options: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    """A finished run whose weights start this one; tasks it lacks get new heads."""
    pretrained_encoder: str | None = None
    """A ``state_dict`` file loaded into the trunk encoder(s) (strict: all keys must match)."""
    pretrained_prefix: str | None = None
    """Key prefix to strip from ``pretrained_encoder`` (e.g. ``encoder.``)."""
    freeze: str = "none"
    """``none``, ``trunk`` (everything but the heads), ``shared`` or ``old_heads``."""
    freeze_stages: int | None = None
    """With ``freeze: trunk``: freeze only the first k stages of the trunk encoder(s)."""


@dataclass
class WeightingConfig:
    name: str = "ew"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    name: str = "adam"
    lr: float = 1e-3
    options: dict[str, Any] = field(default_factory=dict)
    scheduler: str | None = None
    scheduler_options: dict[str, Any] = field(default_factory=dict)
    scheduler_interval: str = "epoch"
    """Step the scheduler after every ``epoch`` or after every optimizer ``step``."""
    warmup_steps: int = 0
    """Linear warm-up: optimizer step s (from 0) uses ``lr·(s+1)/warmup_steps`` until then."""
    trunk_lr_scale: float = 1.0
    """With ``model.init_from``: learning rate of everything but the new tasks' own parameters,
    relative to ``lr`` (0 trains only the new heads)."""


@dataclass
class TrainingConfig:
    epochs: int = 10
    mode: str = "joint"
    grad_clip: float | None = None
    accumulate: int = 1
    """Batches whose gradients are summed (and divided by their number) per optimizer step."""
    precision: str = "fp32"
    """``fp32``, ``bf16`` (autocast) or ``fp16`` (autocast + loss scaling; CUDA and ew only)."""
    patience: int | None = None
    """Early stopping: epochs without improvement of ``monitor`` before stopping."""
    monitor: str = "loss"
    """``loss`` (mean validation loss) or ``TASK:METRIC``."""
    progress: bool = True
    on_nonfinite: str = "stop"
    """A NaN/inf loss: ``stop`` the run (the last checkpoint stays) or ``skip`` the batch."""
    tensorboard: bool = False
    """Also log to TensorBoard (``RUN_DIR/tensorboard``; needs the ``tensorboard`` package)."""
    checkpoint_every_steps: int | None = None
    """Also write ``checkpoint.pt`` every this many optimizer steps, inside an epoch (a resumed
    run continues from there); default: after every epoch only, or every 1000 steps with
    ``data.stream``."""


@dataclass
class RegularizationConfig:
    kind: str = "none"
    """``none``, ``l1``, ``l2`` or ``elasticnet``."""
    strength: float = 0.0
    l1_ratio: float = 0.5
    scope: str = "shared"
    """``shared`` (the shared parameters) or ``all``."""


@dataclass
class TaskOverride:
    weight: float | None = None
    metrics: list[str] | None = None
    class_weight: str | dict[str, float] | list[float] | None = None
    """Multiclass/binary: ``balanced``, ``{label: weight}`` or one weight per class."""
    pos_weight: float | list[float] | str | None = None
    """Binary/multilabel: weight of the positive class, one per label, or ``balanced``."""


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    weighting: WeightingConfig = field(default_factory=WeightingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    regularization: RegularizationConfig = field(default_factory=RegularizationConfig)
    tasks: dict[str, TaskOverride] = field(default_factory=dict)
    """Per-task overrides by task name: ``{sex: {weight: 0.5}}``."""
    select_tasks: list[str] | None = None
    """Train on these tasks of the dataset only (default: all)."""
    seed: int = 0
    threads: int | None = None
    """CPU threads for torch (``torch.set_num_threads``); default: torch's own choice."""
    device: str = "auto"
    """``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    out: str | None = None
    baselines: bool = False
    """Also train the single-task baselines (``stl``) and report Δm."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_RANGES: dict[str, Interval] = {
    "data.val_size": Interval(Real, 0.0, 0.9),
    "data.test_size": Interval(Real, 0.0, 0.9, closed="right"),
    "optim.trunk_lr_scale": Interval(Real, 0.0, None),
    "threads": Interval(Integral, 1, None),
    "model.freeze_stages": Interval(Integral, 1, None),
    "data.stream_chunk_rows": Interval(Integral, 1, None),
    "data.shuffle_buffer": Interval(Integral, 0, None),
    "data.num_workers": Interval(Integral, 0, None),
    "training.checkpoint_every_steps": Interval(Integral, 1, None),
    "seed": Interval(Integral, 0, 2**64 - 1, closed="both"),
}
"""Ranges of the fields no component declares (the config's own)."""
_COMPONENT_CHOICES: dict[str, str] = {
    "data.sampling": "mtlkit.data.loaders:SAMPLING_RULES",
    "data.split": "mtlkit.data.table:SPLIT_METHODS",
}
"""Fields whose choices the component lists (``module:NAME``, imported when checked)."""
_OPTIONS = "mtlkit.training.options:TrainingOptions"
_PREPROCESSOR = "mtlkit.data.tabular:TabularPreprocessor"
_DECLARED: dict[str, tuple[str, str]] = {
    "data.batch_size": (_OPTIONS, "batch_size"),
    "data.onehot_max": (_PREPROCESSOR, "onehot_max"),
    "data.max_categories": (_PREPROCESSOR, "max_categories"),
    "data.min_frequency": (_PREPROCESSOR, "min_frequency"),
    "optim.lr": ("mtlkit.training.trainer:OPTIMIZER_CONSTRAINTS", "lr"),
    "optim.warmup_steps": (_OPTIONS, "warmup_steps"),
    "optim.scheduler_interval": ("mtlkit.training.trainer:Trainer", "scheduler_interval"),
    "training.epochs": ("mtlkit.training.trainer:Trainer._fit_constraints", "epochs"),
    "training.patience": ("mtlkit.training.trainer:Trainer._fit_constraints", "patience"),
    "training.mode": (_OPTIONS, "mode"),
    "training.grad_clip": (_OPTIONS, "grad_clip"),
    "training.accumulate": (_OPTIONS, "accumulate"),
    "training.precision": (_OPTIONS, "precision"),
    "training.on_nonfinite": (_OPTIONS, "on_nonfinite"),
    "regularization.kind": ("mtlkit.training.options:Regularization", "kind"),
    "regularization.strength": ("mtlkit.training.options:Regularization", "strength"),
    "regularization.l1_ratio": ("mtlkit.training.options:Regularization", "l1_ratio"),
    "regularization.scope": ("mtlkit.training.options:Regularization", "scope"),
}
"""Fields checked by the component's declaration (``module:OBJECT`` with a
``_parameter_constraints`` mapping, or the mapping itself, and the parameter's name there)."""
_CHOICES: dict[str, tuple[str, ...]] = {
    "model.freeze": ("none", "trunk", "shared", "old_heads"),
}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        return origin.__name__
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path)
            except ConfigError as err:
                errors.append(err)
        raise errors[0]
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        _, value_type = typing.get_args(tp)
        return {str(k): _convert(v, value_type, f"{path}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (item_type,) = typing.get_args(tp)
        return [_convert(v, item_type, f"{path}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if tp is float:
        number = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = float(value)
        if number is None:
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(number):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    raise ConfigError(f"{path}: unsupported type {_type_name(tp)}")


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys, types, ranges and choices."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"{where}: unknown key{hint}")
        kwargs[key] = _convert(value, hints[key], where)
        _check_value(where, kwargs[key])
        if where == "data.tasks":
            for i, item in enumerate(kwargs[key]):
                _check_table_task(f"data.tasks[{i}]", item)
    section = cls(**kwargs)
    _check_component_options(section)
    return section


def declared(path: str) -> Interval | Options | None:
    """The range or choices the component declares for config field ``path`` (``None``: none)."""
    if path not in _DECLARED:
        return None
    target, name = _DECLARED[path]
    module, _, attrs = target.partition(":")
    owner: Any = importlib.import_module(module)
    for attr in attrs.split("."):
        owner = getattr(owner, attr)
    constraints = owner if isinstance(owner, dict) else owner._parameter_constraints
    return next(c for c in constraints[name] if isinstance(c, Interval | Options))


def choices(path: str) -> tuple[str, ...] | None:
    """The allowed values of a string field: the config's own or its component's."""
    if path in _COMPONENT_CHOICES:
        module, _, name = _COMPONENT_CHOICES[path].partition(":")
        return tuple(getattr(importlib.import_module(module), name))
    constraint = declared(path)
    if isinstance(constraint, Options):
        return tuple(constraint.values)
    return _CHOICES.get(path)


def _check_value(path: str, value: Any) -> None:
    interval = _RANGES.get(path) or declared(path)
    if isinstance(interval, Interval) and value is not None and value not in interval:
        raise ConfigError(f"{path}: expected {interval}, got {value!r}")
    allowed = choices(path)
    if allowed is not None and value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"{path}: expected one of {', '.join(allowed)}, got {value!r}{hint}")


def _check_component_options(section: Any) -> None:
    """``model.arch_options`` and ``weighting.options``, checked by the component's constraints.

    Imports the registry (and torch) only when there are options to check.
    """
    try:
        if isinstance(section, ModelConfig) and section.arch_options:
            from mtlkit.models.architectures import check_arch_options

            check_arch_options(section.arch, dict(section.arch_options))
        if isinstance(section, WeightingConfig) and section.options:
            from mtlkit.weighting.registry import check_strategy_options

            check_strategy_options(section.name, dict(section.options))
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _check_table_task(path: str, task: Any) -> None:
    from mtlkit.tasks import TASK_KINDS

    if not task.name:
        raise ConfigError(f"{path}.name: every task needs a name")
    if task.kind not in TASK_KINDS:
        raise ConfigError(
            f"{path}.kind: expected one of {', '.join(TASK_KINDS)}, got {task.kind!r}"
        )


def merge(base: dict[str, Any], overrides: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Deep-merge ``overrides`` into ``base`` (dotted keys like ``optim.lr`` are expanded).

    A mapping is never merged into a value of ``base`` that is neither a mapping nor null
    (``training: 3`` in a file, then ``--epochs 2``): that is an error naming the field.
    """
    result = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in overrides.items():
        head, _, rest = key.partition(".") if isinstance(key, str) else (key, "", "")
        if rest:
            value, key = {rest: value}, head
        if isinstance(value, dict):
            existing = result.get(key)
            name = f"{where}{key}"
            if existing is not None and not isinstance(existing, dict):
                raise ConfigError(f"{name}: expected a mapping, got {existing!r}")
            result[key] = merge(existing or {}, value, f"{name}.")
        else:
            result[key] = value
    return result
