"""Training a configured run: :func:`train_run` (new or resumed) and :func:`resume_run`.

A run directory holds (see :mod:`mtlkit.runs.trained` for reading it back):

- ``config.yaml``: the resolved configuration;
- ``tasks.json``: the tasks, the dataset name, target scaling and tabular preprocessing;
- ``metrics.jsonl``: one JSON record per epoch (train losses, validation metrics);
- ``checkpoint.pt``: the full training state after the last epoch, or after the last
  ``training.checkpoint_every_steps`` optimizer steps inside one (atomic);
- ``model.pt``: the weights of the best validation epoch;
- ``summary.json``: final test metrics of every task (and Δm when baselines ran).

Under ``torchrun`` (several processes) the same function runs on every rank: each trains on its
shard of every batch (see :mod:`mtlkit.distributed`), and rank 0 alone writes the run directory.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from mtlkit.config import Config, ConfigError, load_config
from mtlkit.data import DatasetBundle, make_loader
from mtlkit.distributed.env import DistContext, DistributedError, init_from_env
from mtlkit.models import MultiTaskModel
from mtlkit.runs.build import (
    Transfer,
    build_model,
    build_trainer,
    load_bundle,
    prepare_transfer,
    resolve_device,
)
from mtlkit.runs.logs import append_line, log_tensorboard, require_tensorboard, tensorboard_writer
from mtlkit.runs.resume import check_data_unchanged, keep_log_lines, read_checkpoint, restore
from mtlkit.runs.rundir import RunLock, check_new_run_directory, clear_run_directory
from mtlkit.runs.stream import StreamBundle, checkpoint_every_steps, stream_train_loader
from mtlkit.runs.trained import bundle_metadata
from mtlkit.training.checkpoint import (
    FileError,
    atomic_save,
    atomic_write_text,
    remove_temp_files,
    rng_states,
    seed_everything,
    strict_json,
)
from mtlkit.training.trainer import Trainer


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


def _on_main(ctx: DistContext | None, action: Callable[[], None]) -> None:
    """Run ``action`` on rank 0; its error (a ``ValueError``: :class:`ConfigError`,
    :class:`FileError`) is raised on every rank as a :class:`ConfigError` (no rank hangs)."""
    if ctx is None:
        action()
        return
    message = None
    if ctx.is_main:
        try:
            action()
        except ValueError as err:
            message = str(err)
    message = ctx.broadcast_object(message, what="run directory check")
    if message is not None:
        raise ConfigError(message)


def check_run(config: Config, bundle: DatasetBundle) -> None:
    """Build what :func:`train_run` would build (model, strategy, optimizer); write nothing."""
    resolve_device(config.device)
    require_tensorboard(config)
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
    ``run_dir/checkpoint.pt`` (written after an epoch or inside one), or starts from scratch
    when there is none. Launched by ``torchrun`` it joins the process group and trains
    data-parallel (any number of processes, also on resume). ``on_epoch_end(record)`` sees
    every epoch's record (train losses, ``val``, ``score``); an exception it raises stops the
    run (``mtlkit tune`` prunes trials this way).
    Ctrl-C (or SIGTERM, see :class:`Terminated`) raises :class:`RunInterrupted`.
    """
    ctx = init_from_env(resolve_device(config.device) if config.device != "auto" else "auto")
    is_main = ctx is None or ctx.is_main
    if ctx is not None:
        ctx.check_same(config.to_dict(), "the configuration")
    seed_everything(config.seed)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    require_tensorboard(config)
    bundle = bundle or load_bundle(config)
    model, transfer = prepare_transfer(config, build_model(config, bundle), bundle)
    trainer = build_trainer(config, model, bundle, transfer, distributed=ctx)
    loader = train_loader(config, bundle, ctx)
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
            restore(state, trainer, loader, path, ctx)
        if path is not None:
            _on_main(ctx, lambda: _prepare_files(path, config, bundle, resume, trainer.epoch))
        if ctx is not None:
            ctx.barrier("start")
        return _train(config, trainer, loader, bundle, path, ctx, before, transfer, on_epoch_end)
    except KeyboardInterrupt as err:
        message = _interrupted_message(trainer, config.training.epochs, path)
        raise RunInterrupted(message, getattr(err, "signal_number", signal.SIGINT)) from None
    finally:
        lock.__exit__(None, None, None)


def train_loader(
    config: Config, bundle: DatasetBundle | StreamBundle, ctx: DistContext | None = None
):
    """Shuffled training batches (this process's shard of each), resumable mid-epoch."""
    if isinstance(bundle, StreamBundle):
        return stream_train_loader(config, bundle, ctx)
    return make_loader(
        bundle.train,
        config.data.batch_size,
        seed=config.seed,
        sampling=config.data.sampling,
        rank=ctx.rank if ctx else 0,
        world_size=ctx.world_size if ctx else 1,
    )


def _prepare_files(
    path: Path, config: Config, bundle: DatasetBundle, resume: bool, epochs_done: int
) -> None:
    """The run directory's files before training: a new run's, or a resumed one's trimmed.

    A new run writes ``tasks.json``, then ``config.yaml`` (what marks a run directory); if
    either cannot be written (a full disk), neither is left behind to block the retry.
    """
    remove_temp_files(path)
    config_text = yaml.safe_dump(config.to_dict(), sort_keys=False)
    if resume:
        keep_log_lines(path, epochs_done)
        if (path / "config.yaml").read_text() != config_text:  # a new --epochs
            atomic_write_text(config_text, path / "config.yaml")
        return
    clear_run_directory(path)
    try:
        atomic_write_text(
            strict_json(bundle_metadata(bundle, config), indent=2), path / "tasks.json"
        )
        atomic_write_text(config_text, path / "config.yaml")
    except FileError:
        for name in ("tasks.json", "config.yaml"):
            (path / name).unlink(missing_ok=True)
        raise


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
    writer = tensorboard_writer(config, path) if is_main else None

    def checkpoint(trainer: Trainer, position: dict[str, Any] | None = None) -> dict[str, Any]:
        """Rank 0's training state with every rank's random state (a collective: every rank
        calls it; the others get ``{}``). ``position``: the loader's state, if taken already."""
        # every rank first, before the collective: on CUDA the last step's losses are checked
        # lazily, and a rank raising alone would leave the others waiting in the gather
        trainer.check_pending_losses()
        rng = rng_states()
        every_rank = None if ctx is None else ctx.all_gather_object(rng, what="random states")
        if not is_main:
            return {}
        position = position if position is not None else loader.state_dict()
        return trainer.state_dict() | {"loader": position, "rng": rng, "rng_ranks": every_rank}

    def log_epoch(trainer: Trainer, record: dict[str, Any]) -> None:
        if path is not None:
            state = checkpoint(trainer)
            if is_main:  # the record first: a checkpoint never runs ahead of the log
                append_line(path / "metrics.jsonl", strict_json(record))
                atomic_save(state, path / "checkpoint.pt")
            if writer is not None:
                log_tensorboard(writer, record)
        if on_epoch_end is not None:
            on_epoch_end(record)

    every = checkpoint_every_steps(config)
    on_step_end = None
    if path is not None and every is not None:

        def on_step_end(trainer: Trainer) -> None:
            if trainer.step % every:
                return
            position = loader.state_dict()
            if position.get("batches", 0) == 0:
                return  # a loader past the epoch's last batch: the epoch's checkpoint follows
            state = checkpoint(trainer, position)
            if is_main:
                atomic_save(state, path / "checkpoint.pt")

    try:
        trainer.fit(
            loader,
            bundle.val,
            epochs=config.training.epochs,
            patience=config.training.patience,
            on_epoch_end=log_epoch,
            on_step_end=on_step_end,
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
        f"{err}. No checkpoint had been written yet in {str(path)!r}; "
        f"`mtlkit train --resume {path}` starts it again from scratch"
    )


def resume_run(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> RunResult:
    """Continue a run from its last checkpoint.

    ``overrides`` may set what does not change the run's results: ``training.epochs`` (train
    further; not below the epochs done), ``training.progress`` and ``device``. A run stopped
    before its first checkpoint starts again from scratch.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"--resume: {str(run_dir)!r} is not a run directory (no config.yaml)")
    config = load_config(run_dir / "config.yaml", overrides)
    check_data_unchanged(config, run_dir)
    return train_run(config, run_dir, resume=True)
