"""Objects built from a :class:`~mtlkit.config.Config`: device, data, model, transfer, trainer.

Every builder turns the library's own errors into a :class:`~mtlkit.config.ConfigError` naming
the config field at fault, so that a bad config fails before a run directory is written.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from mtlkit.config import Config, ConfigError
from mtlkit.data import DatasetBundle, MultiInputDataset, load_dataset
from mtlkit.data.table import TableTask, load_table
from mtlkit.distributed.env import DistContext
from mtlkit.models import MultiTaskModel, make_encoder, make_model
from mtlkit.models.architectures import ARCHITECTURE_CLASSES
from mtlkit.models.inputs import EncoderWithInput, TabularInput, WithInputLayer
from mtlkit.tasks import Task
from mtlkit.training.checkpoint import load_file, read_json
from mtlkit.training.options import Regularization, TrainingOptions
from mtlkit.training.trainer import Trainer, make_optimizer, make_scheduler, optimizer_groups
from mtlkit.weighting import make_weighting


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA, else Apple's MPS, else the CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``,
    if present."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device: expected auto, cpu, cuda, cuda:N or mps, got {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {name!r} requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device: {name!r} requested but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device: {name!r} requested but MPS (Apple GPU) is not available")
    return device


def apply_task_overrides(tasks: list[Task], config: Config) -> list[Task]:
    names = [t.name for t in tasks]
    for name in config.tasks:
        if name not in names:
            raise ConfigError(f"tasks.{name}: unknown task; tasks are {', '.join(names)}")
    result = []
    for task in tasks:
        override = config.tasks.get(task.name)
        if override is None:
            result.append(task)
            continue
        changes: dict[str, Any] = {}
        if override.weight is not None:
            if override.weight < 0:
                raise ConfigError(f"tasks.{task.name}.weight: expected >= 0")
            changes["weight"] = override.weight
        if override.metrics is not None:
            changes["metrics"] = override.metrics
        for option in ("class_weight", "pos_weight"):
            if getattr(override, option) is not None:
                changes[option] = getattr(override, option)
        try:
            result.append(replace(task, **changes))
        except ValueError as err:
            raise ConfigError(f"tasks.{task.name}: {err}") from None
    return result


def table_split_options(config: Config) -> dict[str, Any]:
    """The ``load_table`` arguments that fix which rows of a table land in which split."""
    data = config.data
    return {
        "id_column": data.id_column,
        "split": data.split,
        "val_size": data.val_size,
        "test_size": data.test_size,
        "stratify": data.stratify,
        "split_column": data.split_column,
        "seed": config.seed,
        "na_values": data.na_values,
    }


def table_encoder_options(config: Config) -> dict[str, Any]:
    """The :class:`~mtlkit.data.TabularPreprocessor` options of ``data:`` (how categorical
    columns are encoded), for ``load_table`` and a streamed table alike."""
    data = config.data
    return {
        "onehot_max": data.onehot_max,
        "max_categories": data.max_categories,
        "min_frequency": data.min_frequency,
        "hash_buckets": data.hash_buckets,
        "embedding_dim": data.embedding_dim,
        "seed": config.seed,
    }


def load_bundle(config: Config) -> DatasetBundle:
    """The configured data: a built-in dataset, or the user's table when ``data.path`` is set
    (with ``data.stream``, a :class:`~mtlkit.runs.stream.StreamBundle`: read in chunks)."""
    data = config.data
    if data.stream:
        from mtlkit.runs.stream import load_stream  # it imports this module

        return load_stream(config)  # type: ignore[return-value]
    if data.path is None:
        try:
            bundle = load_dataset(data.dataset, **data.options)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    else:
        bundle = load_table(
            data.path,
            [TableTask(t.name, t.kind, (t.column or t.name).split("+")) for t in data.tasks],
            features=data.features,
            categorical=data.categorical,
            encoder_options=table_encoder_options(config),
            **table_split_options(config),
        )
    if config.select_tasks is not None:
        try:
            bundle = bundle.select_tasks(config.select_tasks)
        except KeyError as err:
            raise ConfigError(f"select_tasks: {err.args[0]}") from None
    bundle.tasks = apply_task_overrides(bundle.tasks, config)
    try:  # "balanced" class weights come from the training split
        bundle.tasks = [t.fit_class_weights(_train_targets(bundle, t.name)) for t in bundle.tasks]
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return bundle


def _train_targets(bundle: DatasetBundle, task: str) -> torch.Tensor:
    train = bundle.train
    if isinstance(train, MultiInputDataset):
        return train.task_dataset(task).targets[task]
    return train.targets[task]


def build_model(config: Config, bundle: DatasetBundle) -> MultiTaskModel:
    """The configured architecture. A table with embedded categorical columns gets one
    :class:`TabularInput` in front of it (one set of tables for every expert / column), or one
    inside each task's encoder when the tasks share nothing (STL)."""
    encoder = config.model.encoder or bundle.default_encoder
    options = config.model.encoder_options
    pre = bundle.preprocessor
    specs = pre.embedding_specs if pre is not None else []
    n_dense = pre.n_dense if pre is not None and specs else 0
    arch = ARCHITECTURE_CLASSES.get(config.model.arch)
    per_task = bool(specs) and arch is not None and arch.independent_tasks
    input_layer = TabularInput(n_dense, specs) if specs and not per_task else None
    input_shape = (n_dense + sum(s.dim for s in specs),) if specs else bundle.input_shape

    def encoder_factory() -> torch.nn.Module:
        built = make_encoder(encoder, input_shape, **options)
        return EncoderWithInput(TabularInput(n_dense, specs), built) if per_task else built

    where = (
        f"model: cannot build {config.model.arch!r} with encoder {encoder!r} "
        f"(encoder_options={dict(options)}, arch_options={dict(config.model.arch_options)})"
    )
    try:
        with warnings.catch_warnings():  # a zero width is reported below, in one line
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")
            model = make_model(
                config.model.arch, encoder_factory, bundle.tasks, **config.model.arch_options
            )
    except (ValueError, TypeError, RuntimeError) as err:  # torch's own errors name no field
        first = str(err).strip().splitlines()[0]
        raise ConfigError(first if first.startswith("model.") else f"{where}: {first}") from None
    empty = next((n for n, p in model.named_parameters() if p.numel() == 0), None)
    if empty is not None:
        raise ConfigError(f"{where}: layer widths must be >= 1 (parameter {empty!r} is empty)")
    return WithInputLayer(model, input_layer) if input_layer else model


@dataclass
class Transfer:
    """What :func:`prepare_transfer` did: the old run's tasks and the new ones."""

    old_tasks: list[str]
    new_tasks: list[str]
    frozen: list[str]


def prepare_transfer(
    config: Config, model: MultiTaskModel, bundle: DatasetBundle
) -> tuple[MultiTaskModel, Transfer | None]:
    """Apply ``model.init_from``, ``model.pretrained_encoder`` and ``model.freeze``."""
    from mtlkit.models import transfer

    old: list[str] = []
    new: list[str] = []
    if config.model.init_from:
        source = Path(config.model.init_from)
        meta_path = source / "tasks.json"
        if not meta_path.is_file() or not (source / "model.pt").is_file():
            raise ConfigError(f"model.init_from: {str(source)!r} is not a finished run")
        meta = read_json(meta_path, "model.init_from")
        old = [t["name"] for t in meta["tasks"]]
        missing = [t for t in old if t not in bundle.task_names]
        if missing:
            raise ConfigError(
                f"model.init_from: the run's task(s) {', '.join(missing)} are not in this config"
            )
        new = [t for t in bundle.task_names if t not in old]
        model = build_model(config, bundle.select_tasks(old))
        state = load_file(source / "model.pt", "model.init_from")
        try:
            transfer.load_state(model, state)
        except (ValueError, RuntimeError, AttributeError) as err:
            raise ConfigError(f"model.init_from: {err}") from None
        for name in new:
            transfer.add_task(model, bundle.task(name))
    if config.model.pretrained_encoder:
        path = Path(config.model.pretrained_encoder)
        if not path.is_file():
            raise ConfigError(f"model.pretrained_encoder: file {str(path)!r} does not exist")
        state = load_file(path, "model.pretrained_encoder")
        try:
            transfer.load_encoder(model, state, prefix=config.model.pretrained_prefix)
        except (ValueError, RuntimeError, AttributeError) as err:
            raise ConfigError(f"model.pretrained_encoder: {err}") from None
    frozen: list[str] = []
    if config.model.freeze == "trunk":
        frozen = transfer.freeze_trunk(model, stages=config.model.freeze_stages)
    elif config.model.freeze == "shared":
        frozen = transfer.freeze_shared(model)
    elif config.model.freeze == "old_heads":
        if not old:
            raise ConfigError("model.freeze: old_heads needs model.init_from")
        frozen = transfer.freeze_heads(model, old)
    if not old and not frozen:
        return model, None
    return model, Transfer(old, new, frozen)


def _param_groups(config: Config, model: MultiTaskModel, transfer: Transfer | None):
    if transfer is None or not transfer.new_tasks:
        return None
    from mtlkit.models.transfer import param_groups

    groups = param_groups(
        model, transfer.new_tasks, config.optim.lr, trunk_lr_scale=config.optim.trunk_lr_scale
    )
    return [g for g in groups if g["params"]]


def build_trainer(
    config: Config,
    model: MultiTaskModel,
    bundle: DatasetBundle,
    transfer: Transfer | None = None,
    distributed: DistContext | None = None,
    device: torch.device | None = None,
) -> Trainer:
    """The configured :class:`Trainer` (``device``: default the run's device)."""
    try:
        weighting = make_weighting(
            config.weighting.name, len(bundle.tasks), **config.weighting.options
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None
    try:
        options = TrainingOptions(
            mode=config.training.mode,
            grad_clip=config.training.grad_clip or None,
            accumulate=config.training.accumulate,
            warmup_steps=config.optim.warmup_steps,
            precision=config.training.precision,
            regularization=Regularization(
                kind=config.regularization.kind,
                strength=config.regularization.strength,
                l1_ratio=config.regularization.l1_ratio,
                scope=config.regularization.scope,
            ),
            monitor=config.training.monitor,
            on_nonfinite=config.training.on_nonfinite,
            progress=config.training.progress,
        )
        groups = optimizer_groups(model, weighting, _param_groups(config, model, transfer))
        optimizer = make_optimizer(
            config.optim.name, groups, config.optim.lr, **config.optim.options
        )
        scheduler = make_scheduler(
            config.optim.scheduler, optimizer, **config.optim.scheduler_options
        )
        return Trainer(
            model,
            bundle.tasks,
            weighting,
            optimizer,
            scheduler=scheduler,
            scheduler_interval=config.optim.scheduler_interval,
            options=options,
            device=device or (distributed.device if distributed else resolve_device(config.device)),
            target_scaling=bundle.target_scaling,
            distributed=distributed,
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None
