"""Flags shared by the commands that train (``train``, ``group``): data, model, optimization."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtlkit.config import Config


def add_run_flags(parser: argparse.ArgumentParser, out_help: str) -> None:
    """Add the config file, data, model and training flags, ``--set``, ``--overwrite``..."""
    parser.add_argument("--config", help="YAML config file (flags override its fields)")
    parser.add_argument("--data", help="your own CSV or Parquet file (instead of --dataset)")
    parser.add_argument(
        "--task",
        action="append",
        dest="tasks",
        metavar="NAME:KIND:COLUMN",
        help="a task of --data: kind multiclass, binary, multilabel or regression; options "
        "after the column, e.g. :class_weight=balanced or :pos_weight=3 (repeatable)",
    )
    parser.add_argument("--features", help="comma-separated feature columns of --data")
    parser.add_argument("--categorical", help="comma-separated columns to one-hot encode")
    parser.add_argument(
        "--na-values",
        dest="na_values",
        help="comma-separated cell texts that mean missing, e.g. NA,? (default: only empty cells)",
    )
    parser.add_argument(
        "--id-column", dest="id_column", help="an id column of --data (not a feature)"
    )
    parser.add_argument("--split", help="random, stratified or column")
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


def run_directory(config: Config, suffix: str, overwrite: bool) -> Path:
    """The run directory (``config.out`` or ``runs/<data>-<suffix>``), checked for a new run.

    Refuses a file, a folder that is not a run directory, an existing run without
    ``overwrite`` and an unwritable place. Also makes ``data.path`` absolute, so that the run
    can be resumed from anywhere.
    """
    from mtlkit.training.rundir import check_new_run_directory

    if config.data.path:
        config.data.path = str(Path(config.data.path).resolve())
    name = Path(config.data.path).stem if config.data.path else config.data.dataset
    out = Path(config.out or f"runs/{name}-{suffix}")
    check_new_run_directory(out, overwrite)
    return out
