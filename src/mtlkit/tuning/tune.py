"""Run a study to its number of trials, writing the table, best config and plot as it goes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtlkit.config import Config, ConfigError
from mtlkit.training import NonFiniteLossError
from mtlkit.tuning.report import describe_trial, write_outputs
from mtlkit.tuning.space import DEFAULT_SPACE, parse_space
from mtlkit.tuning.study import (
    Objective,
    TuneConfig,
    check_space_fits,
    finished,
    import_optuna,
    open_study,
    scoring_fields,
)


@dataclass
class TuneResult:
    study: Any
    """The ``optuna.Study`` (with the trials of every process that worked on it)."""
    objective: Objective
    ran: int
    """Trials this call ran."""
    files: list[Path] = field(default_factory=list)


def tune(
    base: Config,
    settings: TuneConfig,
    out: str | Path,
    storage: str | None = None,
    study_name: str = "mtlkit",
    overwrite: bool = False,
    echo: Callable[[str], None] = print,
) -> TuneResult:
    """Search ``settings.space`` around the ``base`` config until the study has enough trials.

    Checks the whole space first (a bad key or value raises :class:`ConfigError` naming it),
    then runs trials until ``settings.trials`` are complete or pruned, counting those already
    in the study (``storage``, default ``sqlite:///<out>/study.db``). After every trial it
    rewrites ``out/trials.csv`` and ``out/config.yaml`` (the best trial's config), at the end
    ``out/study.png``.
    """
    optuna = import_optuna()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    space = parse_space(settings.space or DEFAULT_SPACE, base.to_dict())
    metric = settings.metric or base.training.monitor
    objective = Objective(base, space, metric, settings.cv_folds)
    direction = objective.direction
    if settings.direction is not None and settings.direction != direction:
        raise ConfigError(f"tune.direction: {metric!r} is to {direction}, not {settings.direction}")
    objective.check()
    scoring = scoring_fields(base, metric, settings.cv_folds)
    epochs = base.training.epochs
    study = open_study(storage, study_name, direction, settings, scoring, overwrite, epochs)
    check_space_fits(study, space)
    done = finished(study)
    remaining = settings.trials - done
    where = f"{settings.cv_folds}-fold CV" if settings.cv_folds else "the validation split"
    echo(
        f"study {study_name!r} ({storage}): {done} of {settings.trials} trials finished; "
        f"running up to {max(remaining, 0)} more, {direction} {metric} on {where}"
    )
    ran = 0

    def after_trial(study: Any, trial: Any) -> None:
        nonlocal ran
        ran += 1
        echo(describe_trial(trial, metric))
        write_outputs(study, objective, out, plot=False)

    if remaining > 0:
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        callbacks = [optuna.study.MaxTrialsCallback(settings.trials, states=states), after_trial]
        study.optimize(
            objective, n_trials=remaining, callbacks=callbacks, catch=(NonFiniteLossError,)
        )
    files = write_outputs(study, objective, out)
    return TuneResult(study, objective, ran, files)
