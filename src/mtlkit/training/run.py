"""A configured training run and its run directory.

A run directory holds:

- ``config.yaml``: the resolved configuration;
- ``tasks.json``: the tasks, the dataset name, target scaling and tabular preprocessing;
- ``metrics.jsonl``: one JSON record per epoch (train losses, validation metrics);
- ``checkpoint.pt``: the full training state after the last epoch (atomic);
- ``model.pt``: the weights of the best validation epoch;
- ``summary.json``: final test metrics of every task (and Δm when baselines ran).

Under ``torchrun`` (several processes) the same function runs on every rank: each trains on its
shard of every batch (see :mod:`mtlkit.distributed`), and rank 0 alone writes the run directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import signal
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from mtlkit.config import Config, ConfigError
from mtlkit.data import (
    DatasetBundle,
    MultiInputDataset,
    TabularPreprocessor,
    load_dataset,
    make_loader,
)
from mtlkit.data.table import TableTask, load_table
from mtlkit.distributed.env import DistContext, DistributedError, init_from_env
from mtlkit.models import MultiTaskModel, make_encoder, make_model
from mtlkit.tasks import Task
from mtlkit.training.checkpoint import (
    FileError,
    atomic_save,
    atomic_write_text,
    load_file,
    read_json,
    remove_temp_files,
    rng_states,
    seed_everything,
    set_rng_states,
    strict_json,
)
from mtlkit.training.rundir import RunLock, check_new_run_directory, clear_run_directory
from mtlkit.training.trainer import Trainer
from mtlkit.weighting import make_weighting


@dataclass
class RunResult:
    run_dir: Path | None
    test: dict[str, dict[str, float]]
    history: list[dict[str, Any]]
    model: MultiTaskModel
    bundle: DatasetBundle
    seconds_per_epoch: float
    transfer: Transfer | None = None
    before: dict[str, dict[str, float]] | None = None
    """With ``model.init_from``: the old tasks' test metrics before this run trained."""
    is_main: bool = True
    """Whether this process wrote the run directory (rank 0 under torchrun)."""


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, if present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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


def load_bundle(config: Config) -> DatasetBundle:
    """The configured data: a built-in dataset, or the user's table when ``data.path`` is set."""
    data = config.data
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
            id_column=data.id_column,
            split=data.split,
            val_size=data.val_size,
            test_size=data.test_size,
            stratify=data.stratify,
            split_column=data.split_column,
            seed=config.seed,
            na_values=data.na_values,
            max_categories=data.max_categories,
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
    encoder = config.model.encoder or bundle.default_encoder
    options = config.model.encoder_options

    def encoder_factory() -> torch.nn.Module:
        return make_encoder(encoder, bundle.input_shape, **options)

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
    return model


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
        return Trainer(
            model,
            bundle.tasks,
            weighting=weighting,
            optimizer=config.optim.name,
            lr=config.optim.lr,
            optimizer_options=config.optim.options,
            scheduler=config.optim.scheduler,
            scheduler_options=config.optim.scheduler_options,
            mode=config.training.mode,
            regularization=config.regularization.kind,
            reg_strength=config.regularization.strength,
            l1_ratio=config.regularization.l1_ratio,
            reg_scope=config.regularization.scope,
            grad_clip=config.training.grad_clip,
            monitor=config.training.monitor,
            device=device or (distributed.device if distributed else resolve_device(config.device)),
            target_scaling=bundle.target_scaling,
            progress=config.training.progress,
            on_nonfinite=config.training.on_nonfinite,
            param_groups=_param_groups(config, model, transfer),
            distributed=distributed,
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundle_metadata(bundle: DatasetBundle, config: Config | None = None) -> dict[str, Any]:
    return {
        "data_sha256": file_digest(config.data.path) if config and config.data.path else None,
        "dataset": bundle.name,
        "tasks": [t.to_dict() for t in bundle.tasks],
        "input_shape": list(bundle.input_shape),
        "target_scaling": {k: list(v) for k, v in bundle.target_scaling.items()},
        "target_columns": bundle.target_columns,
        "preprocessor": bundle.preprocessor.to_dict() if bundle.preprocessor else None,
    }


def _require_tensorboard(config: Config) -> None:
    """Fail before anything is written when TensorBoard logging needs a missing package."""
    if config.training.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "training.tensorboard: needs the tensorboard package (pip install tensorboard)"
        )


def _tensorboard_writer(config: Config, path: Path | None):
    if not config.training.tensorboard or path is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(path / "tensorboard"))


def _log_tensorboard(writer, record: dict[str, Any]) -> None:
    epoch = record["epoch"]
    for task, loss in record["train_loss"].items():
        writer.add_scalar(f"train_loss/{task}", loss, epoch)
    for task, metrics in record.get("val", {}).items():
        for name, value in metrics.items():
            writer.add_scalar(f"val/{task}/{name}", value, epoch)
    writer.add_scalar("lr", record["lr"], epoch)
    writer.flush()


class Terminated(KeyboardInterrupt):
    """Raised by the command line's SIGTERM handler (Ctrl-C raises ``KeyboardInterrupt``)."""

    signal_number = signal.SIGTERM


class RunInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped a run; its directory holds the last checkpoint, resumable.

    ``exit_code`` is the shell's convention: 128 + the signal number (130 Ctrl-C, 143 SIGTERM).
    """

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + int(signal_number)


def read_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The training state saved in ``run_dir/checkpoint.pt``; ``None`` if no epoch finished."""
    path = run_dir / "checkpoint.pt"
    if not path.exists():
        return None
    state = load_file(path, "--resume", weights_only=False)
    if not isinstance(state, dict) or not {"model", "epoch", "loader", "rng"} <= set(state):
        raise FileError(f"--resume: {str(path)!r} is not an mtlkit training checkpoint")
    return state


def _restore(state: dict[str, Any], trainer: Trainer, loader, run_dir: Path) -> None:
    try:
        trainer.load_state_dict(state)
        loader.load_state_dict(state["loader"])
    except (KeyError, RuntimeError, ValueError) as err:
        raise FileError(
            f"--resume: {str(run_dir / 'checkpoint.pt')!r} does not match the run's "
            f"config.yaml ({str(err).strip().splitlines()[0]})"
        ) from None
    set_rng_states(state["rng"])


def _keep_log_lines(path: Path, epochs: int) -> None:
    """Drop ``metrics.jsonl`` records of epochs that ended after the checkpoint was written."""
    log = path / "metrics.jsonl"
    if log.is_file():
        lines = log.read_text().splitlines()[:epochs]
        atomic_write_text("".join(line + "\n" for line in lines), log)


def _append_line(path: Path, line: str) -> None:
    try:
        with open(path, "a") as handle:
            handle.write(line + "\n")
    except OSError as err:
        raise FileError(f"cannot write {str(path)!r}: {err.strerror}") from None


def _on_main(ctx: DistContext | None, action: Callable[[], None]) -> None:
    """Run ``action`` on rank 0; its :class:`ConfigError` is raised on every rank (no hang)."""
    if ctx is None:
        action()
        return
    message = None
    if ctx.is_main:
        try:
            action()
        except ConfigError as err:
            message = str(err)
    message = ctx.broadcast_object(message, what="run directory check")
    if message is not None:
        raise ConfigError(message)


def check_run(config: Config, bundle: DatasetBundle) -> None:
    """Build what :func:`train_run` would build (model, strategy, optimizer); write nothing."""
    resolve_device(config.device)
    _require_tensorboard(config)
    model, transfer = prepare_transfer(config, build_model(config, bundle), bundle)
    build_trainer(config, model, bundle, transfer, device=torch.device("cpu"))


def train_run(
    config: Config,
    run_dir: str | Path | None = None,
    overwrite: bool = False,
    bundle: DatasetBundle | None = None,
    resume: bool = False,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Train one model as configured; write the run directory when ``run_dir`` is given.

    Everything is checked (data, model, strategy, optimizer, run directory, checkpoint) before
    anything is written. With ``resume=True`` training continues exactly from
    ``run_dir/checkpoint.pt``, or starts from scratch when no epoch had finished. Launched by
    ``torchrun`` it joins the process group and trains data-parallel (any number of processes,
    also on resume). ``on_epoch_end(record)`` sees every epoch's record (train losses, ``val``,
    ``score``); an exception it raises stops the run (``mtlkit tune`` prunes trials this way).
    Ctrl-C (or SIGTERM, see :class:`Terminated`) raises :class:`RunInterrupted`.
    """
    ctx = init_from_env(resolve_device(config.device) if config.device != "auto" else "auto")
    is_main = ctx is None or ctx.is_main
    if ctx is not None:
        ctx.check_same(config.to_dict(), "the configuration")
    seed_everything(config.seed)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    _require_tensorboard(config)
    bundle = bundle or load_bundle(config)
    model, transfer = prepare_transfer(config, build_model(config, bundle), bundle)
    trainer = build_trainer(config, model, bundle, transfer, distributed=ctx)
    loader = make_loader(
        bundle.train,
        config.data.batch_size,
        seed=config.seed,
        sampling=config.data.sampling,
        rank=ctx.rank if ctx else 0,
        world_size=ctx.world_size if ctx else 1,
    )
    path = Path(run_dir) if run_dir is not None else None
    state = None
    if resume:
        if path is None:
            raise ConfigError("--resume needs a run directory")
        state = read_checkpoint(path)
        if state is not None and state["epoch"] > config.training.epochs:
            raise ConfigError(
                f"--epochs {config.training.epochs}: the run has already trained "
                f"{state['epoch']} epochs; pass at least {state['epoch']}"
            )
    elif path is not None:
        _on_main(ctx, lambda: check_new_run_directory(path, overwrite))
    before = None
    if transfer is not None and transfer.old_tasks and not resume:
        tested = trainer.evaluate(bundle.test)
        before = {k: v for k, v in tested.items() if k in transfer.old_tasks}
    lock = RunLock(path) if path is not None and is_main else contextlib.nullcontext()
    if path is not None and is_main and not resume:
        path.mkdir(parents=True, exist_ok=True)
    _on_main(ctx, lock.__enter__)
    try:
        if state is not None:
            _restore(state, trainer, loader, path)
        if path is not None and is_main:
            remove_temp_files(path)
            if resume:
                _keep_log_lines(path, trainer.epoch)
                config_text = yaml.safe_dump(config.to_dict(), sort_keys=False)
                if (path / "config.yaml").read_text() != config_text:  # a new --epochs
                    atomic_write_text(config_text, path / "config.yaml")
            else:
                clear_run_directory(path)
                metadata = strict_json(bundle_metadata(bundle, config), indent=2)
                atomic_write_text(metadata, path / "tasks.json")
                config_text = yaml.safe_dump(config.to_dict(), sort_keys=False)
                atomic_write_text(config_text, path / "config.yaml")
        if ctx is not None:
            ctx.barrier("start")
        return _train(config, trainer, loader, bundle, path, ctx, before, transfer, on_epoch_end)
    except KeyboardInterrupt as err:
        message = _interrupted_message(trainer, config.training.epochs, path)
        raise RunInterrupted(message, getattr(err, "signal_number", signal.SIGINT)) from None
    finally:
        lock.__exit__(None, None, None)


def _interrupted_message(trainer: Trainer, epochs: int, path: Path | None) -> str:
    if trainer.epoch >= epochs or trainer.history.stopped_early:  # in the final evaluation
        where = f"interrupted after epoch {trainer.epoch}, step {trainer.step}"
    else:
        where = f"interrupted at epoch {trainer.epoch + 1}, step {trainer.step}"
    if path is None:
        return where
    return f"{where}; resume with mtlkit train --resume {path}"


def _train(
    config: Config,
    trainer: Trainer,
    loader,
    bundle: DatasetBundle,
    path: Path | None,
    ctx: DistContext | None,
    before: dict[str, dict[str, float]] | None,
    transfer: Transfer | None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None,
) -> RunResult:
    """The training loop of :func:`train_run` once the run directory is ready."""
    is_main = ctx is None or ctx.is_main
    writer = _tensorboard_writer(config, path) if is_main else None

    def log_epoch(trainer: Trainer, record: dict[str, Any]) -> None:
        if path is not None and is_main:
            _append_line(path / "metrics.jsonl", strict_json(record))
            state = trainer.state_dict() | {"loader": loader.state_dict(), "rng": rng_states()}
            atomic_save(state, path / "checkpoint.pt")
            if writer is not None:
                _log_tensorboard(writer, record)
        if on_epoch_end is not None:
            on_epoch_end(record)

    try:
        trainer.fit(
            loader,
            bundle.val,
            epochs=config.training.epochs,
            patience=config.training.patience,
            on_epoch_end=log_epoch,
        )
        trainer.restore_best()
        test = trainer.evaluate(bundle.test)
    except DistributedError as err:
        raise DistributedError(_failure_message(err, path)) from err
    except FileError as err:  # disk full or no longer writable
        raise FileError(_failure_message(err, path)) from None
    finally:
        if writer is not None:
            writer.close()
    history = trainer.history.epochs
    seconds = sum(r["seconds"] for r in history) / max(len(history), 1)
    if path is not None and is_main:
        atomic_save(trainer.model.state_dict(), path / "model.pt")
        summary = {
            "arch": config.model.arch,
            "weighting": config.weighting.name,
            "best_epoch": trainer.history.best_epoch,
            "epochs_run": len(history),
            "stopped_early": trainer.history.stopped_early,
            "skipped_batches": trainer.skipped_batches,
            "init_from": config.model.init_from,
            "old_tasks_before": before,
            "num_parameters": trainer.model.num_parameters(),
            "seconds_per_epoch": seconds,
            "test": test,
        }
        atomic_write_text(strict_json(summary, indent=2), path / "summary.json")
    if ctx is not None:  # nobody reports success before rank 0 has written the run directory
        ctx.barrier("finish")
    return RunResult(
        path, test, history, trainer.model, bundle, seconds, transfer, before, is_main=is_main
    )


def _failure_message(err: Exception, path: Path | None) -> str:
    if path is None:
        return str(err)
    checkpoint = path / "checkpoint.pt"
    if checkpoint.is_file():
        return (
            f"{err}. The last checkpoint {str(checkpoint)!r} is intact; continue with "
            f"`mtlkit train --resume {path}` (with any number of processes)"
        )
    return (
        f"{err}. No epoch had finished, so there is no checkpoint in {str(path)!r}; "
        f"`mtlkit train --resume {path}` starts it again from scratch"
    )


def load_run(
    run_dir: str | Path,
) -> tuple[Config, DatasetBundle | None, dict[str, Any], MultiTaskModel]:
    """Config, metadata and best model of a finished run (the dataset is not reloaded)."""
    from mtlkit.config import load_config

    run_dir = Path(run_dir)
    for name in ("config.yaml", "tasks.json", "model.pt"):
        if not (run_dir / name).is_file():
            raise ConfigError(
                f"run directory {str(run_dir)!r} has no {name}; is it a finished run?"
            )
    config = load_config(run_dir / "config.yaml")
    meta = read_json(run_dir / "tasks.json", "run directory")
    tasks = [Task.from_dict(t) for t in meta["tasks"]]
    shell = DatasetBundle(
        name=meta["dataset"],
        tasks=tasks,
        train=None,  # type: ignore[arg-type]
        val=None,  # type: ignore[arg-type]
        test=None,  # type: ignore[arg-type]
        input_shape=tuple(meta["input_shape"]),
        default_encoder=config.model.encoder or _default_encoder(meta),
        preprocessor=TabularPreprocessor.from_dict(meta["preprocessor"])
        if meta["preprocessor"]
        else None,
        target_scaling={k: tuple(v) for k, v in meta["target_scaling"].items()},
        target_columns=meta.get("target_columns", {}),
    )
    model = build_model(config, shell)
    weights = load_file(run_dir / "model.pt", "run directory")
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise FileError(
            f"run directory: {str(run_dir / 'model.pt')!r} does not hold the weights of the "
            f"model in config.yaml ({str(err).strip().splitlines()[0]})"
        ) from None
    model.eval()
    return config, shell, meta, model


def _default_encoder(meta: dict[str, Any]) -> str:
    return "lenet" if len(meta["input_shape"]) == 3 else "mlp"


def resume_run(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> RunResult:
    """Continue a run from its last checkpoint.

    ``overrides`` may set what does not change the run's results: ``training.epochs`` (train
    further; not below the epochs done), ``training.progress`` and ``device``. A run stopped
    before its first checkpoint starts again from scratch.
    """
    from mtlkit.config import load_config

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"--resume: {str(run_dir)!r} is not a run directory (no config.yaml)")
    config = load_config(run_dir / "config.yaml", overrides)
    meta = read_json(run_dir / "tasks.json", "--resume")
    if config.data.path:
        if not Path(config.data.path).is_file():
            raise ConfigError(f"--resume: the run's data file {config.data.path!r} is gone")
        if meta.get("data_sha256") != file_digest(config.data.path):
            raise ConfigError(
                f"--resume: data file {config.data.path!r} changed since the run started"
            )
    return train_run(config, run_dir, resume=True)
