"""The ``evaluate``, ``predict`` and ``demo`` commands (the logic lives in :mod:`mtlkit.runs`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mtlkit.analysis import comparison_table, delta_m, plot_training_curves
from mtlkit.config import Config, ConfigError, from_dict, merge, with_overrides
from mtlkit.runs import RunResult, load, load_bundle, train_run
from mtlkit.tasks import Task
from mtlkit.training.checkpoint import atomic_write_text, strict_json


def _metrics_of(tasks: list[Task]) -> dict[str, list[str]]:
    return {t.name: list(t.metrics) for t in tasks}


def evaluate(args: argparse.Namespace) -> int:
    """Metrics of a finished run on one of its splits, or on every row of a labelled ``--data``.

    See :meth:`mtlkit.runs.TrainedRun.evaluate`.
    """
    run = load(args.run_dir)
    results = run.evaluate(args.data, split=args.split)
    if args.data:
        label = f"metrics on every row of {args.data!r}"
    else:
        label = f"{args.split or 'test'} metrics"
    print(f"{run.dataset} {label} ({args.run_dir})")
    print(comparison_table({run.config.model.arch: results}, _metrics_of(run.tasks)))
    return 0


def predict(args: argparse.Namespace) -> int:
    """Predictions of a run trained on a table for the rows of a CSV or Parquet file (or a
    directory or glob of them), read and written in chunks, in input order.

    See :meth:`mtlkit.runs.TrainedRun.predict_file`.
    """
    run = load(args.run_dir)
    output = Path(args.output)
    if output.is_dir():
        raise ConfigError(f"--output: {str(output)!r} is a folder; name a CSV file")
    counts = run.predict_file(
        args.input,
        output,
        id_column=args.id_column,
        all_probabilities=args.all_probabilities,
        chunk_rows=args.chunk_rows,
    )
    print(f"wrote {counts['rows']} rows to {args.output}")
    print(
        f"rows with every feature missing: {counts['all_features_missing']}; "
        f"rows with a category unseen in training: {counts['unseen_category']}"
    )
    return 0


DEMO_CASES: dict[str, dict[str, Any]] = {
    "digits-50": {
        "data": {
            "dataset": "digits",
            "batch_size": 32,
            "options": {"labelled": {"digit": 50}},
        },
        "model": {"encoder": "mlp", "encoder_options": {"hidden": [64]}},
        "optim": {"name": "adam", "lr": 3e-3},
        "training": {"epochs": 40},
    },
    "multimnist-1k": {
        "data": {"dataset": "multimnist", "batch_size": 128, "options": {"n_train": 1000}},
        "optim": {"name": "adam", "lr": 1e-3},
        "training": {"epochs": 10},
    },
}
"""The demo's two cases: one where sharing helps, one where it hurts (docs/results.md)."""
DEMO_NOTES: dict[str, str] = {
    "digits-50": "sharing helps: the digit task has only 50 training labels, and parity and "
    "digit ≥ 5 (all 1,079 labels) train the trunk it reads",
    "multimnist-1k": "sharing hurts: the two digits sit in different corners and one small "
    "LeNet must serve both, where the single-task models have one each "
    "(`mtlkit group` measures such conflicts before you share)",
}
QUICK_OPTIONS: dict[str, dict[str, Any]] = {
    "digits-50": {"training": {"epochs": 2}},
    "multimnist-1k": {
        "data": {"options": {"n_train": 256, "n_val": 64, "n_test": 64}},
        "training": {"epochs": 1},
    },
}


def demo(args: argparse.Namespace) -> int:
    """Single-task baselines against hard parameter sharing on a case where sharing helps and
    one where it hurts; compare."""
    root = Path(args.out) / "demo"
    for dataset, base in DEMO_CASES.items():
        raw = merge(base, QUICK_OPTIONS[dataset]) if args.quick else base
        if args.epochs:
            raw = merge(raw, {"training.epochs": args.epochs})
        raw = merge(raw, {"training.progress": not args.quick})
        config = from_dict(Config, raw)
        bundle = load_bundle(config)
        runs: dict[str, RunResult] = {}
        for arch in ("stl", "hps"):
            print(f"[{dataset}] training {arch} ...", flush=True)
            runs[arch] = train_run(
                with_overrides(config, {"model.arch": arch}), root / dataset / arch, True, bundle
            )
        metrics = _metrics_of(bundle.tasks)
        results = {arch: run.test for arch, run in runs.items()}
        delta = {"stl": 0.0, "hps": delta_m(results["hps"], results["stl"], metrics)}
        table = comparison_table(results, metrics, delta)
        seconds = ", ".join(f"{a} {r.seconds_per_epoch:.1f}s/epoch" for a, r in runs.items())
        print(f"\n{dataset} — test metrics ({seconds})\n{table}\n")
        plot = plot_training_curves(
            {arch: run.history for arch, run in runs.items()},
            {t.name: t.main_metric for t in bundle.tasks},
            root / dataset / "curves.png",
            title=f"{dataset}: stl vs hps",
        )
        atomic_write_text(
            strict_json({"test": results, "delta_m": delta}, indent=2),
            root / dataset / "comparison.json",
        )
        print(f"curves: {plot}")
        print(f"{dataset}: {DEMO_NOTES[dataset]}\n")
    return 0
