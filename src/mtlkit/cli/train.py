"""``mtlkit train``: a new run, a resumed one, and the single-task baselines (Δm).

Everything a run needs is checked before its directory is written, the baselines' model
included. Ctrl-C and SIGTERM stop a run between two statements: the last checkpoint stays
whole and ``mtlkit train --resume RUN_DIR`` continues it (exit code 130 or 143).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mtlkit.analysis import comparison_table, delta_m_terms
from mtlkit.cli.commands import _metrics_of
from mtlkit.cli.flags import config_overrides, run_config, run_directory
from mtlkit.config import Config, ConfigError, from_dict, load_config, merge
from mtlkit.data import DatasetBundle
from mtlkit.data.table import label_report
from mtlkit.runs.build import build_model, load_bundle, prepare_transfer
from mtlkit.runs.stream import StreamBundle, stream_label_report
from mtlkit.runs.train import (
    RunInterrupted,
    RunResult,
    Terminated,
    check_run,
    resume_run,
    train_run,
)
from mtlkit.training.checkpoint import atomic_write_text, read_json, strict_json

RESUME_FLAGS_REFUSED = ("config", "out", "overwrite", "print_model")
"""Flags that make no sense with ``--resume`` (the run directory is the whole configuration)."""
RESUME_FIELDS_ALLOWED = ("training.epochs", "training.progress", "device")
"""Fields ``--resume`` may change: the number of epochs, the progress bars, the device."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` (a ``KeyboardInterrupt``) while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(args: argparse.Namespace) -> int:
    with sigterm_as_interrupt():
        if args.resume:
            return _resume(args)
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    config = run_config(args)
    out = run_directory(config, config.model.arch, args.overwrite)
    bundle = load_bundle(config)
    if args.print_model:
        from mtlkit.models.architectures.common import describe

        model, _ = prepare_transfer(config, build_model(config, bundle), bundle)
        print(describe(model))
        return 0
    baseline = _baseline_config(config)
    if baseline is not None:  # a baseline that cannot train fails before anything is written
        try:
            check_run(baseline, bundle)
        except ConfigError as err:
            raise ConfigError(f"--baselines: the single-task models (arch stl): {err}") from None
    print(f"{bundle.name}: {len(bundle.tasks)} tasks")
    report = stream_label_report if isinstance(bundle, StreamBundle) else label_report
    print("\n".join(report(bundle)))
    result = train_run(config, out, overwrite=args.overwrite, bundle=bundle)
    _report(config, out, result, bundle, baseline)
    return 0


def _baseline_config(config: Config) -> Config | None:
    """The single-task baselines: ``stl`` with the same encoder, data and optimizer.

    Of ``model.arch_options`` they keep those ``stl`` has (``head_hidden``); the others belong
    to the multi-task architecture (``num_experts``...).
    """
    if not config.baselines or config.model.arch == "stl":
        return None
    from mtlkit.models.architectures import ARCHITECTURES

    accepted = inspect.signature(ARCHITECTURES["stl"]).parameters
    data = config.to_dict()
    data["model"]["arch"] = "stl"
    data["model"]["arch_options"] = {
        k: v for k, v in config.model.arch_options.items() if k in accepted
    }
    data["weighting"] = {"name": "ew", "options": {}}
    return from_dict(Config, data)


def _baseline_test(
    baseline: Config, out: Path, bundle: DatasetBundle | None
) -> dict[str, dict[str, float]]:
    """The baselines' test metrics: kept from a finished ``stl/``, resumed, or trained."""
    stl = out / "stl"
    if (stl / "summary.json").is_file():
        return read_json(stl / "summary.json", "baselines")["test"]
    try:
        if (stl / "config.yaml").is_file():
            return resume_run(stl).test
        return train_run(baseline, stl, overwrite=True, bundle=bundle).test
    except RunInterrupted as err:  # resuming the main run finishes the baselines and Δm
        where = str(err).partition(";")[0]
        message = f"baselines ({stl}): {where}; resume with mtlkit train --resume {out}"
        raise RunInterrupted(message, err.exit_code - 128) from None


def _report(
    config: Config,
    out: Path,
    result: RunResult,
    bundle: DatasetBundle,
    baseline: Config | None,
) -> None:
    """Train or finish the baselines, add Δm to ``summary.json``, print the test metrics."""
    metrics = _metrics_of(bundle.tasks)
    results = {config.model.arch: result.test}
    delta: dict[str, float] = {}
    note = ""
    if baseline is not None:
        baseline_test = _baseline_test(baseline, out, bundle)
        results = {"stl": baseline_test, config.model.arch: result.test}
        terms = delta_m_terms(result.test, baseline_test, metrics)
        delta = {config.model.arch: terms.value}
        note = terms.note()  # e.g. a baseline metric of 0: its relative change is undefined
        if result.is_main:  # under torchrun, rank 0 alone writes the run directory
            summary = read_json(out / "summary.json", "summary")
            summary["delta_m"] = terms.value
            if terms.left_out:
                summary["delta_m_left_out"] = dict(terms.left_out)
            summary["baseline_test"] = baseline_test
            atomic_write_text(strict_json(summary, indent=2), out / "summary.json")
    skipped = result.history[-1].get("skipped_batches", 0) if result.history else 0
    if skipped:
        print(f"skipped {skipped} batch(es) with a non-finite loss (training.on_nonfinite: skip)")
    print(f"\n{bundle.name}: test metrics ({out})")
    print(comparison_table(results, metrics, delta))
    if note:
        print(note)
    if result.before:
        old = {t: m for t, m in metrics.items() if t in result.before}
        moved = {"before": result.before, "after": {t: result.test[t] for t in old}}
        print(f"\nold tasks of {config.model.init_from}: test metrics before and after this run")
        print(comparison_table(moved, old))


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def resume_changes(saved: Config, overrides: dict[str, Any]) -> list[str]:
    """The fields that ``overrides`` would change in a saved run's config, as ``a: old -> new``."""
    wanted = {k: v for k, v in overrides.items() if k not in RESUME_FIELDS_ALLOWED}
    if "data.path" in wanted:
        wanted["data.path"] = str(Path(wanted["data.path"]).resolve())
    before = _flatten(saved.to_dict())
    after = _flatten(from_dict(Config, merge(saved.to_dict(), wanted)).to_dict())
    return [
        f"{key}: {before.get(key)!r} -> {after.get(key)!r}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]


def _resume(args: argparse.Namespace) -> int:
    run_dir = Path(args.resume)
    refused = [f for f in RESUME_FLAGS_REFUSED if getattr(args, f, None)]
    if refused:
        flag = "--" + refused[0].replace("_", "-")
        raise ConfigError(f"--resume continues a run as configured; drop {flag}")
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"--resume: {str(run_dir)!r} is not a run directory (no config.yaml)")
    saved = load_config(run_dir / "config.yaml")
    changes = resume_changes(saved, config_overrides(args))
    if changes:
        raise ConfigError(
            f"--resume continues {str(run_dir)!r} as configured; these flags would change the "
            f"run and are not applied, drop them (or start a new run): {'; '.join(changes)}"
        )
    if not (run_dir / "checkpoint.pt").exists():
        print(f"{run_dir}: no checkpoint was written (no checkpoint.pt); training it from scratch")
    allowed = {k: v for k, v in config_overrides(args).items() if k in RESUME_FIELDS_ALLOWED}
    result = resume_run(run_dir, allowed)
    config = load_config(run_dir / "config.yaml")  # as resumed (a new --epochs)
    _report(config, run_dir, result, result.bundle, _baseline_config(saved))
    return 0
