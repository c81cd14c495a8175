"""The ``mtlkit`` command line: ``train``, ``evaluate``, ``predict`` and ``demo``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from mtlkit.cli import commands
from mtlkit.cli.compare import add_compare_parser, compare
from mtlkit.cli.flags import add_run_flags
from mtlkit.cli.group import add_group_parser
from mtlkit.cli.group import group as group_command
from mtlkit.cli.train import train as train_command
from mtlkit.config import ConfigError
from mtlkit.distributed import DistributedError
from mtlkit.training import NonFiniteLossError
from mtlkit.training.run import RunInterrupted

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
    add_run_flags(train, out_help="run directory (default runs/<dataset>-<arch>)")
    train.add_argument(
        "--baselines", action="store_true", help="also train single-task baselines and report Δm"
    )
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

    evaluate = sub.add_parser("evaluate", help="test metrics of a finished run")
    evaluate.add_argument("run_dir")
    evaluate.add_argument(
        "--split", choices=["train", "val", "test"], help="which split (default: test)"
    )
    evaluate.add_argument(
        "--data",
        help="a labelled CSV/Parquet file: evaluate every row of it with the run's preprocessing",
    )

    predict = sub.add_parser("predict", help="predict every task for the rows of a table")
    predict.add_argument("run_dir")
    predict.add_argument(
        "--input", required=True, help="CSV or Parquet file with the feature columns"
    )
    predict.add_argument("--output", required=True, help="CSV file to write")
    predict.add_argument("--id-column", help="a column to copy to the output")
    predict.add_argument(
        "--all-probabilities", action="store_true", help="write every class probability"
    )

    add_compare_parser(sub)
    add_group_parser(sub)

    demo = sub.add_parser("demo", help="the main job: STL vs HPS on multimnist and penguins")
    demo.add_argument("--out", default="runs")
    demo.add_argument("--epochs", type=int, default=None, help="override the demo's epochs")
    demo.add_argument("--quick", action="store_true", help="a tiny, fast version (for tests)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train" and int(os.environ.get("RANK", "0")) > 0:
        # under torchrun only rank 0 prints reports; errors still go to every rank's stderr
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    try:
        handler = {
            "train": train_command,
            "evaluate": commands.evaluate,
            "predict": commands.predict,
            "demo": commands.demo,
            "compare": compare,
            "group": group_command,
        }[args.command]
        return handler(args) or 0
    except (ConfigError, ValueError, FileNotFoundError) as err:
        print(f"mtlkit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except DistributedError as err:
        print(f"mtlkit {args.command}: distributed training failed: {err}", file=sys.stderr)
        return 1
    except NonFiniteLossError as err:
        print(
            f"mtlkit {args.command}: training stopped: {err}; the last checkpoint is kept",
            file=sys.stderr,
        )
        return 1
    except RunInterrupted as err:
        print(f"mtlkit {args.command}: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt as err:  # before or after a run (e.g. while reading the data)
        print(f"mtlkit {args.command}: interrupted", file=sys.stderr)
        return 128 + int(getattr(err, "signal_number", 2))  # 130 Ctrl-C, 143 SIGTERM
    except OSError as err:  # a file or folder that cannot be read or written
        where = f": {err.filename!r}" if err.filename else ""
        print(f"mtlkit {args.command}: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
