"""``mtlkit tune``: search config values with Optuna; write the best config, a table and a plot.

The config file may carry a ``tune:`` section (space, trials, metric, cv_folds, pruner...; see
:class:`mtlkit.tuning.TuneConfig`); everything else in it is the base config of every trial.
Flags override both (``--trials``, ``--cv-folds``, ``--metric``, ``--set tune.pruner=none``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mtlkit.cli.flags import add_run_flags
from mtlkit.cli.flags import config_overrides as run_overrides
from mtlkit.config import Config, ConfigError, from_dict, merge, read_config_file

TUNE_FLAGS = {"trials": "trials", "cv_folds": "cv_folds", "metric": "metric"}


def add_tune_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune", help="search config values (lr, strategy, regularization...) with Optuna"
    )
    add_run_flags(
        parser,
        out_help="folder of the study: study.db, trials.csv, config.yaml, study.png "
        "(default runs/<dataset>-tune); a rerun continues the study there",
    )
    for action in parser._actions:  # the shared flag means something else here
        if action.dest == "overwrite":
            action.help = "delete the stored study of this name and start afresh"
    parser.add_argument("--trials", type=int, help="finished trials the study should reach")
    parser.add_argument("--cv-folds", type=int, dest="cv_folds", help="K-fold CV on train+val")
    parser.add_argument("--metric", help="loss or TASK:METRIC on validation data")
    parser.add_argument(
        "--storage",
        help="database URL of the study (default sqlite:///<out>/study.db); "
        "processes given the same URL and --study-name share the study",
    )
    parser.add_argument("--study-name", dest="study_name", help="default: the --out folder name")


def _split_overrides(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    config_overrides, tune_overrides = {}, {}
    for key, value in run_overrides(args).items():
        if key.startswith("tune."):
            tune_overrides[key.removeprefix("tune.")] = value
        else:
            config_overrides[key] = value
    for flag, key in TUNE_FLAGS.items():
        if getattr(args, flag) is not None:
            tune_overrides[key] = getattr(args, flag)
    return config_overrides, tune_overrides


def tune(args: argparse.Namespace) -> int:
    import signal

    from mtlkit.cli.train import sigterm_as_interrupt
    from mtlkit.runs.train import RunInterrupted

    with sigterm_as_interrupt():
        try:
            return _tune(args)
        except (KeyboardInterrupt, RunInterrupted) as err:
            if isinstance(err, RunInterrupted):
                signal_number = err.exit_code - 128
            else:
                signal_number = getattr(err, "signal_number", signal.SIGINT)
            raise RunInterrupted(
                "interrupted; the study keeps its finished trials (the one under way is marked "
                "failed): rerun the same command to continue it",
                signal_number,
            ) from None


def _tune(args: argparse.Namespace) -> int:
    from mtlkit.tuning import read_tune_config
    from mtlkit.tuning import tune as run_study

    data = read_config_file(args.config) if args.config else {}
    section = data.pop("tune", None)
    config_overrides, tune_overrides = _split_overrides(args)
    settings = read_tune_config(section, tune_overrides)
    base = from_dict(Config, merge(data, config_overrides))
    if base.data.stream and settings.cv_folds:
        raise ConfigError(
            "tune.cv_folds: cross-validation folds need the table in memory; with data.stream "
            "each trial is scored on the validation split (drop cv_folds)"
        )
    if base.data.path:
        base.data.path = str(Path(base.data.path).resolve())
    name = Path(base.data.path).stem if base.data.path else base.data.dataset
    out = Path(base.out or f"runs/{name}-tune")
    base.out = str(out / "best")
    result = run_study(
        base,
        settings,
        out,
        storage=args.storage,
        study_name=args.study_name or out.name,
        overwrite=args.overwrite,
    )
    study = result.study
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    counts = ", ".join(f"{states.count(s)} {s}" for s in ("complete", "pruned", "fail"))
    print(f"\n{study.study_name}: {len(states)} trials ({counts}); this run added {result.ran}")
    if "complete" in states:
        best = study.best_trial
        print(f"best: trial {best.number}, {result.objective.metric} {best.value:.6g}")
        for key, value in best.user_attrs.get("overrides", {}).items():
            print(f"  {key}: {value}")
    for path in result.files:
        print(f"wrote {path}")
    return 0
