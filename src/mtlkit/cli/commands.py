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
from mtlkit.config import Config, ConfigError, yaml_problem
from mtlkit.data import DatasetBundle
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
            parts = [p for p in spec.split(":") if "=" not in p]
            options = [p for p in spec.split(":")[2:] if "=" in p]
            if len(parts) not in (2, 3) or not all(parts):
                raise ConfigError(f"--task {spec!r}: expected NAME:KIND:COLUMN[:OPTION=VALUE]")
            tasks.append(
                {
                    "name": parts[0],
                    "kind": parts[1],
                    "column": parts[-1] if len(parts) == 3 else None,
                }
            )
            for option in options:  # class_weight=balanced, pos_weight=3, ...
                key, _, value = option.partition("=")
                if key not in ("class_weight", "pos_weight"):
                    raise ConfigError(
                        f"--task {spec!r}: unknown option {key!r}; options: class_weight, "
                        "pos_weight"
                    )
                overrides[f"tasks.{parts[0]}.{key}"] = _yaml_value(value, f"--task {spec!r}")
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
        raise ConfigError(f"{flag}: the value is not valid YAML ({yaml_problem(err)})") from None


def _metrics_of(tasks: list[Task]) -> dict[str, list[str]]:
    return {t.name: list(t.metrics) for t in tasks}


def _with(config: Config, overrides: dict[str, Any]) -> Config:
    from mtlkit.config.schema import from_dict, merge

    return from_dict(Config, merge(config.to_dict(), overrides))


def evaluate(args: argparse.Namespace) -> int:
    """Metrics of a finished run on one of its splits, or on every row of a labelled ``--data``.

    A run trained on a table is evaluated with its stored preprocessing, classes and target
    scaling; its own data file must be unchanged (same SHA-256), so that the split holds the
    same rows as in training.
    """
    from mtlkit.training.evaluation import evaluate as evaluate_split

    config, shell, meta, model = load_run(args.run_dir)
    if shell.preprocessor is not None and config.data.path:
        bundle, split, label = _table_to_evaluate(args, config, shell, meta)
    else:
        if args.data:
            raise ConfigError(f"--data: run {args.run_dir!r} was not trained on a table")
        bundle, split = load_bundle(config), args.split or "test"
        label = f"{split} metrics"
    results = evaluate_split(
        model, bundle.tasks, getattr(bundle, split), target_scaling=bundle.target_scaling
    )
    print(f"{bundle.name} {label} ({args.run_dir})")
    print(comparison_table({config.model.arch: results}, _metrics_of(bundle.tasks)))
    return 0


def _table_to_evaluate(
    args: argparse.Namespace, config: Config, shell: DatasetBundle, meta: dict[str, Any]
) -> tuple[DatasetBundle, str, str]:
    """The run's table (unchanged) or ``--data``, read with the run's stored preprocessing."""
    from mtlkit.data.table import TableTask, load_table
    from mtlkit.training.run import file_digest

    specs = [
        TableTask(t.name, t.kind, shell.target_columns.get(t.name, t.name).split("+"))
        for t in shell.tasks
    ]
    data = config.data
    if args.data:
        if args.split:
            raise ConfigError("--split: with --data every row of the file is evaluated")
        bundle = load_table(args.data, specs, split="all", na_values=data.na_values, fitted=shell)
        return bundle, "test", f"metrics on every row of {args.data!r}"
    path = Path(data.path)
    if not path.is_file():
        raise ConfigError(
            f"evaluate: the run's data file {str(path)!r} no longer exists; "
            "pass --data FILE to evaluate a labelled file with the run's preprocessing"
        )
    if meta.get("data_sha256") != file_digest(path):
        raise ConfigError(
            f"evaluate: data file {str(path)!r} changed since the run was trained, so its "
            f"splits would hold other rows; pass --data {str(path)!r} to evaluate every row "
            "of it with the run's preprocessing"
        )
    bundle = load_table(
        path,
        specs,
        id_column=data.id_column,
        split=data.split,
        val_size=data.val_size,
        test_size=data.test_size,
        stratify=data.stratify,
        split_column=data.split_column,
        seed=config.seed,
        na_values=data.na_values,
        fitted=shell,
    )
    split = args.split or "test"
    return bundle, split, f"{split} metrics"


def predict(args: argparse.Namespace) -> int:
    """Predictions of a run trained on a table for the rows of a CSV or Parquet file."""
    from mtlkit.data.table import read_table

    config, shell, meta, model = load_run(args.run_dir)
    pre = shell.preprocessor
    if pre is None:
        raise ConfigError(
            f"predict: run {args.run_dir!r} was not trained on tabular data; "
            "predict reads rows of feature columns from a CSV or Parquet file"
        )
    path, output = Path(args.input), Path(args.output)
    if output.is_dir():
        raise ConfigError(f"--output: {str(output)!r} is a folder; name a CSV file")
    if output.exists() and path.exists() and output.resolve() == path.resolve():
        raise ConfigError(f"--output: {str(output)!r} is the input file; name another file")
    frame = read_table(path, config.data.na_values)
    if args.id_column and args.id_column not in frame.columns:
        raise ConfigError(f"--id-column: column {args.id_column!r} is not in {str(path)!r}")
    missing = [c for c in pre.numeric + pre.categorical if c not in frame.columns]
    if missing:
        raise ConfigError(f"--input: {str(path)!r} lacks feature column(s) {', '.join(missing)}")
    features = torch.as_tensor(pre.transform(frame))
    with torch.no_grad():
        outputs = model(features)
    _check_finite(outputs, frame)
    table = pd.DataFrame(index=frame.index)
    if args.id_column:
        table[args.id_column] = frame[args.id_column]
    for task in shell.tasks:
        _prediction_columns(table, task, outputs[task.name], shell, args.all_probabilities)
    output.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output, index=False)
    coverage = pre.coverage(frame)
    print(f"wrote {len(table)} rows to {args.output}")
    print(
        f"rows with every feature missing: {coverage['all_features_missing']}; "
        f"rows with a category unseen in training: {coverage['unseen_category']}"
    )
    return 0


def _check_finite(outputs: dict[str, torch.Tensor], frame: pd.DataFrame) -> None:
    """Refuse to write a prediction (or a class chosen from NaN probabilities) for a NaN output."""
    from mtlkit.data.cells import location

    for name, out in outputs.items():
        bad = ~torch.isfinite(out.reshape(len(frame), -1)).all(dim=1)
        if bad.any():
            first = int(torch.nonzero(bad)[0])
            raise ConfigError(
                f"predict: task {name!r}: the model gave non-finite outputs for "
                f"{int(bad.sum())} row(s), first {location(frame, frame.index[first])}; "
                "nothing written"
            )


def _prediction_columns(
    table: pd.DataFrame,
    task: Task,
    out: torch.Tensor,
    shell: DatasetBundle,
    all_probabilities: bool,
) -> None:
    """Add one task's columns: its value, or its class and probability (or every one)."""
    if task.kind == "regression":
        values = unscale(task.predict(out), shell.target_scaling.get(task.name))
        table[task.name] = values.numpy()
        return
    pred = task.predict(out).numpy()
    prob = task.probabilities(out)
    names = list(task.class_names) if task.class_names else None
    if task.kind == "multilabel":
        labels = names or [str(j) for j in range(task.num_outputs)]
        for j, label in enumerate(labels):
            table[f"{task.name}={label}"] = pred[:, j]
            table[f"{task.name}={label}_probability"] = prob[:, j].numpy()
        return
    table[task.name] = [names[p] if names else int(p) for p in pred]
    if task.kind == "binary":
        chosen = torch.where(torch.as_tensor(pred) == 1, prob, 1 - prob)
        full = torch.stack([1 - prob, prob], dim=1)
    else:
        chosen = prob.gather(1, torch.as_tensor(pred)[:, None]).squeeze(1)
        full = prob
    table[f"{task.name}_probability"] = chosen.numpy()
    if all_probabilities:
        labels = names or [str(j) for j in range(full.shape[1])]
        for j, label in enumerate(labels):
            table[f"{task.name}_probability={label}"] = full[:, j].numpy()


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
    from mtlkit.config.schema import from_dict, merge

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
        print(f"{dataset}: {DEMO_NOTES[dataset]}\n")
    return 0
