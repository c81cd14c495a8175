"""The run flags and how they become a config: the one home of the flag → config mapping.

Every command that trains (``train``, ``group``, ``compare``, ``tune``) adds the same flags with
:func:`add_run_flags` (``compare`` leaves out those it varies itself) and turns them into
dotted-key overrides with :func:`config_overrides`: :data:`FLAG_FIELDS` for plain flags,
``--task NAME:KIND:COLUMN[:OPTION=VALUE]``, the comma-separated column lists and ``--set
KEY=VALUE`` (a YAML value). :func:`run_config` merges them into ``--config`` (or the defaults);
:func:`run_directory` checks where a new run goes. This module imports no torch.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml

from mtlkit.config import Config, ConfigError, load_config, yaml_problem

FLAG_FIELDS: dict[str, str] = {
    "dataset": "data.dataset",
    "batch_size": "data.batch_size",
    "arch": "model.arch",
    "encoder": "model.encoder",
    "weighting": "weighting.name",
    "epochs": "training.epochs",
    "mode": "training.mode",
    "patience": "training.patience",
    "lr": "optim.lr",
    "optimizer": "optim.name",
    "seed": "seed",
    "device": "device",
    "out": "out",
    "data": "data.path",
    "id_column": "data.id_column",
    "split": "data.split",
    "stratify": "data.stratify",
    "split_column": "data.split_column",
    "init_from": "model.init_from",
    "threads": "threads",
}
"""Flag (argparse ``dest``) → config field, for flags whose value is the field's value."""
LIST_FLAGS = ("features", "categorical", "na_values")
"""Flags holding a comma-separated list, each the ``data.<flag>`` field."""
TASK_OPTIONS = ("class_weight", "pos_weight")
"""Options of ``--task NAME:KIND:COLUMN:OPTION=VALUE``, each ``tasks.NAME.<option>``."""


def add_run_flags(
    parser: argparse.ArgumentParser, out_help: str, exclude: Collection[str] = ()
) -> None:
    """Add the config file, data, model and training flags, ``--set``, ``--overwrite``...

    ``exclude``: flags (by ``dest``) a command sets itself, e.g. ``compare``'s ``arch``.
    """
    if exclude:
        parser = _Excluding(parser, exclude)  # type: ignore[assignment]
    parser.add_argument("--config", help="YAML config file (flags override its fields)")
    parser.add_argument(
        "--data",
        help="your own CSV or Parquet file (instead of --dataset); with --stream also a "
        "directory or a glob of files",
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="read --data in chunks, never whole (tables larger than memory; data.stream)",
    )
    parser.add_argument(
        "--task",
        action="append",
        dest="tasks",
        metavar="NAME:KIND:COLUMN",
        help="a task of --data: kind multiclass, binary, multilabel or regression; options "
        "after the column, e.g. :class_weight=balanced or :pos_weight=3 (repeatable)",
    )
    parser.add_argument("--features", help="comma-separated feature columns of --data")
    parser.add_argument(
        "--categorical",
        help="comma-separated columns to encode as categories (one-hot or embedding)",
    )
    parser.add_argument(
        "--na-values",
        dest="na_values",
        help="comma-separated cell texts that mean missing, e.g. NA,? (default: only empty cells)",
    )
    parser.add_argument(
        "--id-column", dest="id_column", help="an id column of --data (not a feature)"
    )
    parser.add_argument("--split", help="random, stratified, column or hash (by id or row number)")
    parser.add_argument("--stratify", help="task to stratify the split on")
    parser.add_argument("--split-column", dest="split_column", help="column holding train/val/test")
    parser.add_argument(
        "--dataset", help="built-in dataset: multimnist, penguins, digits, synthetic"
    )
    parser.add_argument("--arch", help="architecture, e.g. hps, stl, mmoe")
    parser.add_argument("--encoder", help="encoder, e.g. mlp or lenet")
    parser.add_argument("--weighting", help="loss weighting / gradient aggregation strategy")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, dest="batch_size")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--optimizer", help="any torch.optim optimizer by name")
    parser.add_argument("--mode", help="joint or alternating")
    parser.add_argument("--patience", type=int, help="early stopping patience (epochs)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--out", help=out_help)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field, e.g. --set regularization.kind=l2 (YAML value)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing run directory"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no per-epoch lines (warnings only)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also debug messages")


class _Excluding:
    """An argument parser that drops the flags whose ``dest`` is excluded."""

    def __init__(self, parser: argparse.ArgumentParser, exclude: Collection[str]) -> None:
        self.parser, self.exclude = parser, set(exclude)

    def add_argument(self, *names: str, **options: Any) -> None:
        dest = options.get("dest") or names[0].lstrip("-").replace("-", "_")
        if dest not in self.exclude:
            self.parser.add_argument(*names, **options)


def yaml_value(text: str, flag: str) -> Any:
    """A flag's value read as YAML (``0.01``, ``[32, 32]``, ``{a: 1}``, ``null``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{flag}: the value is not valid YAML ({yaml_problem(err)})") from None


def _task_overrides(specs: list[str], overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """``data.tasks`` from ``--task`` specs; their options go into ``overrides``."""
    tasks = []
    for spec in specs:
        parts = [p for p in spec.split(":") if "=" not in p]
        options = [p for p in spec.split(":")[2:] if "=" in p]
        if len(parts) not in (2, 3) or not all(parts):
            raise ConfigError(f"--task {spec!r}: expected NAME:KIND:COLUMN[:OPTION=VALUE]")
        tasks.append(
            {"name": parts[0], "kind": parts[1], "column": parts[-1] if len(parts) == 3 else None}
        )
        for option in options:  # class_weight=balanced, pos_weight=3, ...
            key, _, value = option.partition("=")
            if key not in TASK_OPTIONS:
                raise ConfigError(
                    f"--task {spec!r}: unknown option {key!r}; options: {', '.join(TASK_OPTIONS)}"
                )
            overrides[f"tasks.{parts[0]}.{key}"] = yaml_value(value, f"--task {spec!r}")
    return tasks


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The dotted-key config overrides the run flags in ``args`` ask for (unset flags: none)."""
    overrides: dict[str, Any] = {}
    for flag, field in FLAG_FIELDS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides[field] = value
    if getattr(args, "tasks", None):
        overrides["data.tasks"] = _task_overrides(args.tasks, overrides)
    for flag in LIST_FLAGS:
        value = getattr(args, flag, None)
        if value is not None:
            overrides[f"data.{flag}"] = [c.strip() for c in value.split(",") if c.strip()]
    for item in getattr(args, "set", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.lr=0.01")
        overrides[key] = yaml_value(value, f"--set {item!r}")
    if getattr(args, "no_progress", False):
        overrides["training.progress"] = False
    if getattr(args, "stream", False):
        overrides["data.stream"] = True
    if getattr(args, "baselines", False):
        overrides["baselines"] = True
    return overrides


def run_config(args: argparse.Namespace, fixed: dict[str, Any] | None = None) -> Config:
    """``--config`` (or the defaults) with the run flags applied, then the ``fixed`` fields."""
    return load_config(getattr(args, "config", None), {**config_overrides(args), **(fixed or {})})


def run_directory(config: Config, suffix: str, overwrite: bool) -> Path:
    """The run directory (``config.out`` or ``runs/<data>-<suffix>``), checked for a new run.

    Refuses a file, a folder that is not a run directory, an existing run without
    ``overwrite`` and an unwritable place. Also makes ``data.path`` absolute, so that the run
    can be resumed from anywhere.
    """
    from mtlkit.runs.rundir import check_new_run_directory

    if config.data.path:
        config.data.path = str(Path(config.data.path).resolve())
    name = Path(config.data.path).stem if config.data.path else config.data.dataset
    out = Path(config.out or f"runs/{name}-{suffix}")
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun rank 0 checks (and then writes)
        check_new_run_directory(out, overwrite)
    return out
