"""Implementations of the ``mtlkit`` sub-commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from mtlkit.analysis import comparison_table, delta_m, plot_training_curves
from mtlkit.config import Config, ConfigError
from mtlkit.tasks import Task
from mtlkit.training.checkpoint import atomic_write_text
from mtlkit.training.evaluation import unscale
from mtlkit.training.run import (
    RunResult,
    load_bundle,
    load_run,
    train_run,
)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from mtlkit.cli.main import FLAG_FIELDS

    overrides: dict[str, Any] = {}
    for flag, field in FLAG_FIELDS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides[field] = value
    if getattr(args, "tasks", None):
        tasks = []
        for spec in args.tasks:
            parts = spec.split(":")
            if len(parts) not in (2, 3) or not all(parts):
                raise ConfigError(f"--task {spec!r}: expected NAME:KIND:COLUMN")
            tasks.append(
                {
                    "name": parts[0],
                    "kind": parts[1],
                    "column": parts[-1] if len(parts) == 3 else None,
                }
            )
        overrides["data.tasks"] = tasks
    for flag in ("features", "categorical", "na_values"):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[f"data.{flag}"] = [c.strip() for c in value.split(",") if c.strip()]
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.lr=0.01")
        overrides[key] = _yaml_value(value, f"--set {item!r}")
    if getattr(args, "no_progress", False):
        overrides["training.progress"] = False
    if getattr(args, "baselines", False):
        overrides["baselines"] = True
    return overrides


def _yaml_value(text: str, flag: str) -> Any:
    """A flag's value read as YAML (``0.01``, ``[32, 32]``, ``{a: 1}``, ``null``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{flag}: the value is not valid YAML ({problem})") from None


def _metrics_of(tasks: list[Task]) -> dict[str, list[str]]:
    return {t.name: list(t.metrics) for t in tasks}


def _with(config: Config, overrides: dict[str, Any]) -> Config:
    from mtlkit.config.schema import from_dict, merge

    return from_dict(Config, merge(config.to_dict(), overrides))


def evaluate(args: argparse.Namespace) -> int:
    config, _, meta, model = load_run(args.run_dir)
    bundle = load_bundle(config)
    from mtlkit.training.evaluation import evaluate as evaluate_split

    results = evaluate_split(
        model, bundle.tasks, getattr(bundle, args.split), target_scaling=bundle.target_scaling
    )
    print(f"{bundle.name} {args.split} metrics ({args.run_dir})")
    print(comparison_table({config.model.arch: results}, _metrics_of(bundle.tasks)))
    return 0


def predict(args: argparse.Namespace) -> int:
    config, shell, meta, model = load_run(args.run_dir)
    if shell.preprocessor is None:
        raise ConfigError(
            f"predict: run {args.run_dir!r} was not trained on tabular data; "
            "predict reads CSV rows of feature columns"
        )
    path = Path(args.input)
    if not path.is_file():
        raise ConfigError(f"--input: file {str(path)!r} does not exist")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ConfigError(f"--input: cannot read {str(path)!r} as CSV: {err}") from None
    if args.id_column and args.id_column not in frame.columns:
        raise ConfigError(f"--id-column: column {args.id_column!r} is not in {str(path)!r}")
    missing = [
        c
        for c in shell.preprocessor.numeric + shell.preprocessor.categorical
        if c not in frame.columns
    ]
    if missing:
        raise ConfigError(f"--input: {str(path)!r} lacks feature column(s) {', '.join(missing)}")
    features = torch.as_tensor(shell.preprocessor.transform(frame))
    with torch.no_grad():
        outputs = model(features)
    table = pd.DataFrame(index=frame.index)
    if args.id_column:
        table[args.id_column] = frame[args.id_column]
    for task in shell.tasks:
        out = outputs[task.name]
        if task.kind == "regression":
            values = unscale(task.predict(out), shell.target_scaling.get(task.name))
            table[task.name] = values.numpy()
            continue
        pred = task.predict(out).numpy()
        prob = task.probabilities(out)
        names = list(task.class_names) if task.class_names else None
        if task.kind == "multilabel":
            labels = names or [str(j) for j in range(task.num_outputs)]
            for j, label in enumerate(labels):
                table[f"{task.name}={label}"] = pred[:, j]
                table[f"{task.name}={label}_probability"] = prob[:, j].numpy()
            continue
        table[task.name] = [names[p] if names else int(p) for p in pred]
        if task.kind == "binary":
            chosen = torch.where(torch.as_tensor(pred) == 1, prob, 1 - prob)
            full = torch.stack([1 - prob, prob], dim=1)
        else:
            chosen = prob.gather(1, torch.as_tensor(pred)[:, None]).squeeze(1)
            full = prob
        table[f"{task.name}_probability"] = chosen.numpy()
        if args.all_probabilities:
            labels = names or [str(j) for j in range(full.shape[1])]
            for j, label in enumerate(labels):
                table[f"{task.name}_probability={label}"] = full[:, j].numpy()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.output, index=False)
    print(f"wrote {len(table)} rows to {args.output}")
    return 0


DEMO_CONFIGS: dict[str, dict[str, Any]] = {
    "multimnist": {
        "data": {"dataset": "multimnist", "batch_size": 128},
        "optim": {"name": "adam", "lr": 1e-3},
        "training": {"epochs": 10},
    },
    "penguins": {
        "data": {"dataset": "penguins", "batch_size": 32},
        "model": {"encoder_options": {"hidden": [32, 32]}},
        "optim": {"name": "adam", "lr": 3e-3},
        "training": {"epochs": 50},
    },
}
QUICK_OPTIONS: dict[str, dict[str, Any]] = {
    "multimnist": {
        "data": {"options": {"n_train": 256, "n_val": 64, "n_test": 64}},
        "training": {"epochs": 1},
    },
    "penguins": {"training": {"epochs": 2}},
}


def demo(args: argparse.Namespace) -> int:
    """Train the single-task baselines and hard parameter sharing on two datasets; compare."""
    from mtlkit.config.schema import from_dict, merge

    root = Path(args.out) / "demo"
    for dataset, base in DEMO_CONFIGS.items():
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
                _with(config, {"model.arch": arch}), root / dataset / arch, True, bundle
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
            json.dumps({"test": results, "delta_m": delta}, indent=2),
            root / dataset / "comparison.json",
        )
        print(f"curves: {plot}")
    return 0
