"""The ``mtlkit`` command line: train, evaluate, predict, demo, compare, group, tune.

Adding a command — keep ``mtlkit --help`` instant
-------------------------------------------------
Building the parser must not import torch, pandas, matplotlib or scikit-learn (that costs
seconds). So a command module (``mtlkit/cli/<name>.py``) imports only light modules at its top
(argparse, ``mtlkit.config``, ``mtlkit.cli.flags``, ...), defines ``add_<name>_parser(subparsers)``
and a handler ``<name>(args) -> int`` that imports the heavy modules *inside* its body; the
command is registered by adding its parser in :func:`build_parser` and one ``"module:function"``
line to :data:`COMMANDS`, whose handlers are imported only when their command runs. Every
command gets ``--threads`` (see :mod:`mtlkit.cli.threads`).
``tests/cli/test_help_and_version.py`` fails if any registered command's ``--help`` imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mtlkit.cli.compare import add_compare_parser
from mtlkit.cli.flags import add_run_flags
from mtlkit.cli.group import add_group_parser
from mtlkit.cli.threads import add_threads_flag, configure_threads, positive_int
from mtlkit.cli.tune import add_tune_parser
from mtlkit.config import ConfigError
from mtlkit.config.schema import DataConfig

COMMANDS: dict[str, str] = {
    "train": "mtlkit.cli.train:train",
    "evaluate": "mtlkit.cli.commands:evaluate",
    "predict": "mtlkit.cli.commands:predict",
    "demo": "mtlkit.cli.commands:demo",
    "compare": "mtlkit.cli.compare:compare",
    "group": "mtlkit.cli.group:group",
    "tune": "mtlkit.cli.tune:tune",
}
"""Each command's handler as ``"module:function"``, imported only when that command runs."""


class _VersionAction(argparse.Action):
    """``--version``: print ``mtlkit <version>`` and exit, reading the version only then."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        import mtlkit

        print(f"mtlkit {mtlkit.__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtlkit", description="Multi-task learning: train, evaluate, predict."
    )
    parser.add_argument("--version", action=_VersionAction)
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
        "--input",
        required=True,
        help="CSV or Parquet file with the feature columns (or a directory or glob of them)",
    )
    predict.add_argument("--output", required=True, help="CSV file to write")
    predict.add_argument("--id-column", help="a column to copy to the output")
    predict.add_argument(
        "--all-probabilities", action="store_true", help="write every class probability"
    )
    predict.add_argument(
        "--chunk-rows",
        type=positive_int,
        default=DataConfig.stream_chunk_rows,
        metavar="N",
        help="rows read and predicted at a time (memory does not grow with the file; default "
        "%(default)s, as data.stream_chunk_rows)",
    )

    add_compare_parser(sub)
    add_group_parser(sub)
    add_tune_parser(sub)

    demo = sub.add_parser(
        "demo", help="STL vs HPS where sharing helps (digits, 50 labels) and hurts (MultiMNIST)"
    )
    demo.add_argument("--out", default="runs")
    demo.add_argument(
        "--epochs", type=positive_int, default=None, help="override the demo's epochs"
    )
    demo.add_argument("--quick", action="store_true", help="a tiny, fast version (for tests)")
    for command in sub.choices.values():  # every command, also those registered later
        add_threads_flag(command)
    return parser


def _handler(command: str) -> Callable[[argparse.Namespace], int | None]:
    module, _, function = COMMANDS[command].partition(":")
    return getattr(importlib.import_module(module), function)


class _StdoutHandler(logging.StreamHandler):
    """Writes to the ``sys.stdout`` of the moment (a handler bound to the stream of its first
    call would write to a closed one once a caller swapped ``sys.stdout``, as tests do)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(quiet: bool, verbose: bool) -> None:
    """The ``mtlkit`` loggers (e.g. the trainer's line per epoch) print to stdout: INFO by
    default, WARNING with ``--quiet``, DEBUG with ``--verbose``."""
    logger = logging.getLogger("mtlkit")
    for handler in [h for h in logger.handlers if getattr(h, "mtlkit_cli", False)]:
        logger.removeHandler(handler)
    handler = _StdoutHandler()
    handler.mtlkit_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train" and int(os.environ.get("RANK", "0")) > 0:
        # under torchrun only rank 0 prints reports; errors still go to every rank's stderr
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    # Everything below may import torch; building and parsing the arguments above must not.
    from mtlkit.distributed import DistributedError
    from mtlkit.runs.train import RunInterrupted
    from mtlkit.training import NonFiniteLossError

    configure_logging(getattr(args, "quiet", False), getattr(args, "verbose", False))
    try:
        configure_threads(getattr(args, "threads", None))
        return _handler(args.command)(args) or 0
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
