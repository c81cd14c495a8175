"""What ``mtlkit tune`` leaves behind: the best config, a table of trials and a plot."""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from pathlib import Path
from typing import Any

import yaml

from mtlkit.training.checkpoint import atomic_write_text
from mtlkit.tuning.study import Objective

TRIAL_COLUMNS = ["trial", "state", "value", "epochs_reported", "seconds"]


def _state(trial: Any) -> str:
    return trial.state.name.lower()


def _seconds(trial: Any) -> float | None:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def _last_reported(trial: Any) -> float | None:
    if not trial.intermediate_values:
        return None
    return trial.intermediate_values[max(trial.intermediate_values)]


def trial_value(trial: Any) -> float | None:
    """The objective of a complete trial, or the last value a pruned one reported."""
    if trial.value is not None:
        return trial.value
    return _last_reported(trial) if _state(trial) == "pruned" else None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value)
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def trials_csv(study: Any) -> str:
    """One row per trial: number, state, value, epochs reported, seconds, the sampled fields.

    With K-fold CV a ``fold_values`` column holds each fold's value (their mean is ``value``).
    """
    trials = study.get_trials(deepcopy=False)
    keys: list[str] = []
    for trial in trials:
        keys += [k for k in trial.user_attrs.get("overrides", {}) if k not in keys]
    folds = any("fold_values" in t.user_attrs for t in trials)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*TRIAL_COLUMNS, *(["fold_values"] if folds else []), *keys])
    for trial in trials:
        overrides = trial.user_attrs.get("overrides", {})
        value = trial_value(trial)
        row = [trial.number, _state(trial), value, len(trial.intermediate_values), _seconds(trial)]
        if folds:
            row.append(trial.user_attrs.get("fold_values"))
        writer.writerow([_cell(v) for v in row] + [_cell(overrides.get(k)) for k in keys])
    return buffer.getvalue()


def describe_trial(trial: Any, metric: str) -> str:
    """One line: ``trial 3  complete  loss 0.4123  optim.lr=0.0031 weighting.name=uw  (4.2 s)``."""
    state = _state(trial)
    if state == "pruned":
        state = f"pruned after {len(trial.intermediate_values)} epoch(s)"
    if "error" in trial.user_attrs:
        state = f"failed ({trial.user_attrs['error']})"
    parts = [f"trial {trial.number}", state]
    value = trial_value(trial)
    if value is not None and math.isfinite(value):
        parts.append(f"{metric} {value:.4f}")
    overrides = trial.user_attrs.get("overrides", {})
    parts.append(" ".join(f"{k}={_cell(v)}" for k, v in overrides.items()))
    seconds = _seconds(trial)
    if seconds is not None:
        parts.append(f"({seconds:.1f} s)")
    return "  ".join(p for p in parts if p)


def best_config_yaml(study: Any, objective: Objective, command: str) -> str:
    """The base config with the best trial's values, as YAML that ``mtlkit train`` runs."""
    best = study.best_trial
    config = objective.config(best.user_attrs.get("overrides", {}), progress=True)
    folds = (
        f" by {objective.cv_folds}-fold CV" if objective.cv_folds else " on the validation split"
    )
    header = (
        f"# Best of study {study.study_name!r}: trial {best.number}, "
        f"{objective.metric} {best.value:.6g}{folds}\n"
        f"# Train it with: {command}\n"
    )
    return header + yaml.safe_dump(config.to_dict(), sort_keys=False)


def plot_study(study: Any, path: str | Path, metric: str) -> Path:
    """Optimisation history (every trial, the best so far) and parameter importances."""
    import matplotlib.pyplot as plt
    import optuna

    from mtlkit.analysis.report import save_figure

    fig, (history, importance) = plt.subplots(1, 2, figsize=(11, 4))
    trials = study.get_trials(deepcopy=False)
    for state, style in (
        ("complete", {"color": "C0"}),
        ("pruned", {"color": "0.6", "marker": "x"}),
    ):
        points = [(t.number, trial_value(t)) for t in trials if _state(t) == state]
        points = [(n, v) for n, v in points if v is not None]
        if points:
            history.scatter(*zip(*points), label=state, **style)
    complete = [t for t in trials if _state(t) == "complete"]
    if complete:
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        best, steps = None, []
        for trial in complete:
            if best is None or (trial.value > best if maximize else trial.value < best):
                best = trial.value
            steps.append((trial.number, best))
        history.step(*zip(*steps), where="post", color="C1", label="best so far")
    history.set_xlabel("trial")
    history.set_ylabel(f"validation {metric}")
    history.set_title("optimisation history")
    history.legend()
    try:
        with warnings.catch_warnings():  # few trials per value: rough, but still worth a look
            warnings.simplefilter("ignore", UserWarning)
            scores = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):
        scores = {}
    if scores:
        names = list(scores)[::-1]
        importance.barh(names, [scores[n] for n in names])
        importance.set_xlabel("relative importance (optuna.importance)")
    else:
        importance.text(
            0.5,
            0.5,
            "importances need ≥ 2 complete trials\nthat vary a parameter",
            ha="center",
            va="center",
        )
        importance.set_axis_off()
    importance.set_title("parameter importances")
    return save_figure(fig, path)


def write_outputs(study: Any, objective: Objective, out: Path, plot: bool = True) -> list[Path]:
    """Write ``trials.csv``, ``config.yaml`` (once a trial completed) and ``study.png``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "trials.csv"]
    atomic_write_text(trials_csv(study), written[0])
    if any(_state(t) == "complete" for t in study.get_trials(deepcopy=False)):
        path = out / "config.yaml"
        atomic_write_text(best_config_yaml(study, objective, f"mtlkit train --config {path}"), path)
        written.append(path)
    if plot:
        written.append(plot_study(study, out / "study.png", objective.metric))
    return written
