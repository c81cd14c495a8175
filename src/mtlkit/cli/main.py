"""The ``mtlkit`` command line: ``train``, ``evaluate``, ``predict`` and ``demo``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mtlkit.cli import commands
from mtlkit.cli.compare import add_compare_parser, compare
from mtlkit.config import ConfigError
from mtlkit.training import NonFiniteLossError

FLAG_FIELDS = {
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
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtlkit", description="Multi-task learning: train, evaluate, predict."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a multi-task model")
    train.add_argument("--config", help="YAML config file (flags override its fields)")
    train.add_argument("--data", help="your own CSV or Parquet file (instead of --dataset)")
    train.add_argument(
        "--task",
        action="append",
        dest="tasks",
        metavar="NAME:KIND:COLUMN",
        help="a task of --data: kind multiclass, binary, multilabel or regression (repeatable)",
    )
    train.add_argument("--features", help="comma-separated feature columns of --data")
    train.add_argument("--categorical", help="comma-separated columns to one-hot encode")
    train.add_argument(
        "--id-column", dest="id_column", help="an id column of --data (not a feature)"
    )
    train.add_argument("--split", help="random, stratified or column")
    train.add_argument("--stratify", help="task to stratify the split on")
    train.add_argument("--split-column", dest="split_column", help="column holding train/val/test")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its checkpoint")
    train.add_argument(
        "--init-from",
        dest="init_from",
        metavar="RUN_DIR",
        help="start from a finished run's weights; tasks it lacks get new heads",
    )
    train.add_argument(
        "--print-model", action="store_true", help="show the model's structure and exit"
    )
    train.add_argument(
        "--dataset", help="built-in dataset: multimnist, penguins, digits, synthetic"
    )
    train.add_argument("--arch", help="architecture, e.g. hps or stl")
    train.add_argument("--encoder", help="encoder, e.g. mlp or lenet")
    train.add_argument("--weighting", help="loss weighting / gradient aggregation strategy")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int, dest="batch_size")
    train.add_argument("--lr", type=float)
    train.add_argument("--optimizer", help="any torch.optim optimizer by name")
    train.add_argument("--mode", help="joint or alternating")
    train.add_argument("--patience", type=int, help="early stopping patience (epochs)")
    train.add_argument("--seed", type=int)
    train.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    train.add_argument("--out", help="run directory (default runs/<dataset>-<arch>)")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field, e.g. --set regularization.kind=l2 (YAML value)",
    )
    train.add_argument(
        "--baselines", action="store_true", help="also train single-task baselines and report Δm"
    )
    train.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    evaluate = sub.add_parser("evaluate", help="test metrics of a finished run")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--split", default="test", choices=["train", "val", "test"])

    predict = sub.add_parser("predict", help="predict every task for the rows of a CSV file")
    predict.add_argument("run_dir")
    predict.add_argument("--input", required=True, help="CSV file with the feature columns")
    predict.add_argument("--output", required=True, help="CSV file to write")
    predict.add_argument("--id-column", help="a column to copy to the output")
    predict.add_argument(
        "--all-probabilities", action="store_true", help="write every class probability"
    )

    add_compare_parser(sub)

    demo = sub.add_parser("demo", help="the main job: STL vs HPS on multimnist and penguins")
    demo.add_argument("--out", default="runs")
    demo.add_argument("--epochs", type=int, default=None, help="override the demo's epochs")
    demo.add_argument("--quick", action="store_true", help="a tiny, fast version (for tests)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        handler = {
            "train": commands.train,
            "evaluate": commands.evaluate,
            "predict": commands.predict,
            "demo": commands.demo,
            "compare": compare,
        }[args.command]
        return handler(args) or 0
    except (ConfigError, ValueError, FileNotFoundError) as err:
        print(f"mtlkit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(
            f"mtlkit {args.command}: training stopped: {err}; the last checkpoint is kept",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
