"""A configured training run and its run directory.

A run directory holds:

- ``config.yaml``: the resolved configuration;
- ``tasks.json``: the tasks, the dataset name, target scaling and tabular preprocessing;
- ``metrics.jsonl``: one JSON record per epoch (train losses, validation metrics);
- ``checkpoint.pt``: the full training state after the last epoch (atomic);
- ``model.pt``: the weights of the best validation epoch;
- ``summary.json``: final test metrics of every task (and Δm when baselines ran).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from mtlkit.config import Config, ConfigError
from mtlkit.data import DatasetBundle, TabularPreprocessor, load_dataset, make_loader
from mtlkit.models import MultiTaskModel, make_encoder, make_model
from mtlkit.tasks import Task
from mtlkit.training.checkpoint import (
    atomic_save,
    atomic_write_text,
    rng_states,
    seed_everything,
)
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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: expected auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} requested but CUDA is not available")
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
        try:
            result.append(replace(task, **changes))
        except ValueError as err:
            raise ConfigError(f"tasks.{task.name}: {err}") from None
    return result


def load_bundle(config: Config) -> DatasetBundle:
    try:
        bundle = load_dataset(config.data.dataset, **config.data.options)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    bundle.tasks = apply_task_overrides(bundle.tasks, config)
    return bundle


def build_model(config: Config, bundle: DatasetBundle) -> MultiTaskModel:
    encoder = config.model.encoder or bundle.default_encoder
    options = config.model.encoder_options

    def encoder_factory() -> torch.nn.Module:
        return make_encoder(encoder, bundle.input_shape, **options)

    try:
        return make_model(
            config.model.arch, encoder_factory, bundle.tasks, **config.model.arch_options
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None


def build_trainer(config: Config, model: MultiTaskModel, bundle: DatasetBundle) -> Trainer:
    try:
        weighting = make_weighting(
            config.weighting.name, len(bundle.tasks), **config.weighting.options
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if config.training.mode == "alternating" and config.weighting.name != "ew":
        raise ConfigError(
            "training.mode: alternating updates train one task per step; "
            "a weighting strategy other than 'ew' needs training.mode: joint"
        )
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
            device=resolve_device(config.device),
            target_scaling=bundle.target_scaling,
            progress=config.training.progress,
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None


def bundle_metadata(bundle: DatasetBundle) -> dict[str, Any]:
    return {
        "dataset": bundle.name,
        "tasks": [t.to_dict() for t in bundle.tasks],
        "input_shape": list(bundle.input_shape),
        "target_scaling": {k: list(v) for k, v in bundle.target_scaling.items()},
        "target_columns": bundle.target_columns,
        "preprocessor": bundle.preprocessor.to_dict() if bundle.preprocessor else None,
    }


def prepare_run_dir(path: str | Path, overwrite: bool = False) -> Path:
    run_dir = Path(path)
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise ConfigError(
            f"out: run directory {str(run_dir)!r} already exists; pass --overwrite to replace it"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.jsonl", "summary.json", "checkpoint.pt", "model.pt"):
        (run_dir / name).unlink(missing_ok=True)
    return run_dir


def train_run(
    config: Config,
    run_dir: str | Path | None = None,
    overwrite: bool = False,
    bundle: DatasetBundle | None = None,
) -> RunResult:
    """Train one model as configured; write the run directory when ``run_dir`` is given."""
    seed_everything(config.seed)
    bundle = bundle or load_bundle(config)
    model = build_model(config, bundle)
    trainer = build_trainer(config, model, bundle)
    loader = make_loader(
        bundle.train, config.data.batch_size, seed=config.seed, sampling=config.data.sampling
    )
    path = prepare_run_dir(run_dir, overwrite) if run_dir is not None else None
    if path is not None:
        atomic_write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), path / "config.yaml")
        atomic_write_text(json.dumps(bundle_metadata(bundle), indent=2), path / "tasks.json")

    def on_epoch_end(trainer: Trainer, record: dict[str, Any]) -> None:
        if path is None:
            return
        with open(path / "metrics.jsonl", "a") as log:
            log.write(json.dumps(record) + "\n")
        state = trainer.state_dict() | {"loader": loader.state_dict(), "rng": rng_states()}
        atomic_save(state, path / "checkpoint.pt")

    trainer.fit(
        loader,
        bundle.val,
        epochs=config.training.epochs,
        patience=config.training.patience,
        on_epoch_end=on_epoch_end,
    )
    trainer.restore_best()
    test = trainer.evaluate(bundle.test)
    history = trainer.history.epochs
    seconds = sum(r["seconds"] for r in history) / max(len(history), 1)
    if path is not None:
        atomic_save(model.state_dict(), path / "model.pt")
        summary = {
            "arch": config.model.arch,
            "weighting": config.weighting.name,
            "best_epoch": trainer.history.best_epoch,
            "epochs_run": len(history),
            "stopped_early": trainer.history.stopped_early,
            "num_parameters": model.num_parameters(),
            "seconds_per_epoch": seconds,
            "test": test,
        }
        atomic_write_text(json.dumps(summary, indent=2), path / "summary.json")
    return RunResult(path, test, history, model, bundle, seconds)


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
    meta = json.loads((run_dir / "tasks.json").read_text())
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
    model.load_state_dict(torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True))
    model.eval()
    return config, shell, meta, model


def _default_encoder(meta: dict[str, Any]) -> str:
    return "lenet" if len(meta["input_shape"]) == 3 else "mlp"
