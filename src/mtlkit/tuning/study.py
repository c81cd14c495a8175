"""An Optuna study over config values: each trial trains a configured run and reports per epoch.

The objective of a trial is the best validation value of ``metric`` over its epochs (the epoch
whose weights a run keeps), or with ``cv_folds = K`` the mean of that value over K models, each
validated on one fold of train ∪ val. Trials report the best value so far after every epoch
(step ``fold · epochs + epoch``), so a median or successive-halving pruner stops trials that
trail the others at the same step. The study lives in an RDB storage (SQLite by default) with
heartbeats: a rerun continues it, several processes can share it, and a trial whose process
died is marked failed (and retried once) after the grace period.
"""

from __future__ import annotations

import json
import math
import statistics
import warnings
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, ClassVar

from mtlkit._param_validation import Constraint, Interval, Options, validate_params
from mtlkit.config import Config, ConfigError, from_dict, merge
from mtlkit.data import DatasetBundle
from mtlkit.runs import build_model, build_trainer, load_bundle, train_run
from mtlkit.tasks.metrics import higher_is_better
from mtlkit.training import NonFiniteLossError
from mtlkit.tuning.folds import KFOLD_CONSTRAINTS, kfold_bundles
from mtlkit.tuning.space import Param, conditions_met, suggest

PRUNERS = ("median", "halving", "none")
HEARTBEAT_SECONDS = 60
"""Trials send a heartbeat this often; one silent for twice as long is marked failed."""


def import_optuna() -> Any:
    """The ``optuna`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "mtlkit tune needs Optuna: pip install 'mtlkit[tune]' (or pip install optuna)"
        ) from None
    return optuna


@dataclass
class TuneConfig:
    """The ``tune:`` section of a config file (every field optional)."""

    space: dict[str, Any] | None = None
    """Config fields to search (see :mod:`mtlkit.tuning.space`); default ``DEFAULT_SPACE``."""
    trials: int = 20
    """Finished (complete or pruned) trials the study should reach; a rerun only adds the rest."""
    metric: str | None = None
    """``loss`` or ``TASK:METRIC`` on the validation data; default ``training.monitor``."""
    direction: str | None = None
    """``minimize`` or ``maximize``; follows from the metric, so only a check if given."""
    cv_folds: int | None = None
    """K ≥ 2: K-fold cross-validation on train ∪ val instead of the validation split."""
    pruner: str | dict[str, Any] = "median"
    """``median``, ``halving`` or ``none``, or ``{name: ..., <options of the Optuna pruner>}``."""
    sampler: dict[str, Any] = field(default_factory=dict)
    """Options of Optuna's ``TPESampler`` (e.g. ``{n_startup_trials: 5, multivariate: true}``)."""
    seed: int | None = None
    """Seed of the sampler (offset by the trials already run); default: fresh randomness."""

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "trials": [Interval(Integral, 1, None)],
        "cv_folds": [*KFOLD_CONSTRAINTS["folds"], None],
        "direction": [Options(("minimize", "maximize")), None],
    }


def read_tune_config(data: Any, overrides: dict[str, Any] | None = None) -> TuneConfig:
    """Check the ``tune:`` mapping of a config file, with dotted-key ``overrides`` applied."""
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"tune: expected a mapping, got {data!r}")
    settings = from_dict(TuneConfig, merge(data or {}, overrides or {}), "tune")
    constraints = TuneConfig._parameter_constraints
    try:
        validate_params(constraints, {k: getattr(settings, k) for k in constraints}, "tune")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return settings


def metric_direction(metric: str, bundle: DatasetBundle) -> str:
    """``minimize`` or ``maximize`` for ``loss`` or ``TASK:METRIC`` of the bundle's tasks."""
    if metric == "loss":
        return "minimize"
    task_name, _, name = metric.partition(":")
    known = [f"{t.name}:{m}" for t in bundle.tasks for m in t.metrics]
    if metric not in known:
        raise ConfigError(
            f"tune.metric: expected 'loss' or one of {', '.join(known)}, got {metric!r}"
        )
    return "maximize" if higher_is_better(name) else "minimize"


def make_pruner(spec: str | dict[str, Any], epochs: int = 1) -> Any:
    """An Optuna pruner from ``median``, ``halving``, ``none`` or ``{name: ..., **options}``.

    The median pruner never stops a trial in its first quarter of ``epochs`` unless told
    otherwise (Optuna's ``n_warmup_steps``: steps below it are spared; steps are epochs from 1):
    a low learning rate starts slowly, not badly.
    """
    optuna = import_optuna()
    options = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = options.pop("name", "median")
    if name == "median":
        options.setdefault("n_warmup_steps", epochs // 4 + 1)
    classes = {
        "median": optuna.pruners.MedianPruner,
        "halving": optuna.pruners.SuccessiveHalvingPruner,
        "none": optuna.pruners.NopPruner,
    }
    if name not in classes:
        raise ConfigError(f"tune.pruner: expected one of {', '.join(PRUNERS)}, got {name!r}")
    try:
        return classes[name](**options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"tune.pruner: bad options {options} for {name!r}: {err}") from None


def _data_key(config: Config) -> str:
    # everything load_bundle reads; trials that agree on it share the loaded data
    data = config.to_dict()["data"]
    for name in ("batch_size", "sampling"):
        data.pop(name)
    fields = [data, config.to_dict()["tasks"], config.select_tasks, config.seed]
    return json.dumps(fields, sort_keys=True, default=str)


class Objective:
    """Train one configured run per trial (one per fold with ``cv_folds``) and return its score.

    ``base`` is the config every trial starts from; a trial sets the ``space`` fields it
    samples, ``training.monitor`` to ``metric`` and turns progress bars off. ``direction``
    (``minimize`` or ``maximize``) follows from the metric.
    """

    def __init__(
        self, base: Config, space: list[Param], metric: str, cv_folds: int | None = None
    ) -> None:
        self.base = base.to_dict()
        self.space = space
        self.metric = metric
        self.cv_folds = cv_folds
        self._bundles: dict[str, list[DatasetBundle]] = {}
        self.direction = metric_direction(metric, self.bundles(self.config({}))[0])
        self.sign = 1.0 if self.direction == "maximize" else -1.0

    def config(self, overrides: dict[str, Any], progress: bool = False) -> Config:
        """The base config with a trial's ``overrides`` and the tuned metric as monitor."""
        fixed = {"training.monitor": self.metric}
        if not progress:
            fixed["training.progress"] = False
        return from_dict(Config, merge(self.base, {**overrides, **fixed}))

    def bundles(self, config: Config) -> list[DatasetBundle]:
        """The (train, val) pairs a trial trains on: one, or one per fold."""
        key = _data_key(config)
        if key not in self._bundles:
            bundle = load_bundle(config)
            self._bundles[key] = (
                kfold_bundles(bundle, self.cv_folds, config.seed) if self.cv_folds else [bundle]
            )
        return self._bundles[key]

    def check(self) -> None:
        """Build the model and trainer for every choice and bound of the space (no training).

        Catches what the config schema cannot: unknown strategies, architectures and their
        options, a metric the tasks lack; the error names the ``tune.space`` key.
        """
        params = {p.key: p for p in self.space}
        checks: list[tuple[str, dict[str, Any]]] = [("config", {})]
        for param in self.space:
            for value in param.candidates():
                overrides = conditions_met(param, params) | {param.key: value}
                checks.append((f"tune.space.{param.key}: {value!r}", overrides))
        for where, overrides in checks:
            try:
                config = self.config(overrides)
                bundle = self.bundles(config)[0]
                build_trainer(config, build_model(config, bundle), bundle)
            except ConfigError as err:
                raise ConfigError(f"{where}: {err}") from None

    def __call__(self, trial: Any) -> float:
        optuna = import_optuna()
        overrides = suggest(trial, self.space)
        trial.set_user_attr("overrides", overrides)
        config = self.config(overrides)
        epochs = config.training.epochs
        fold_values = []
        for fold, bundle in enumerate(self.bundles(config)):
            best = -math.inf

            def report(record: dict[str, Any], fold: int = fold) -> None:
                nonlocal best
                best = max(best, record.get("score", -math.inf))
                trial.report(self.sign * best, fold * epochs + record["epoch"])
                if trial.should_prune():
                    where = f"fold {fold + 1} epoch" if self.cv_folds else "epoch"
                    raise optuna.TrialPruned(f"pruned at {where} {record['epoch']}")

            try:
                train_run(config, bundle=bundle, on_epoch_end=report)
            except NonFiniteLossError as err:
                trial.set_user_attr("error", str(err))
                raise
            fold_values.append(self.sign * best)
        if self.cv_folds:
            trial.set_user_attr("fold_values", fold_values)
        value = statistics.mean(fold_values)
        return value if math.isfinite(value) else math.nan


def scoring_fields(base: Config, metric: str, cv_folds: int | None) -> dict[str, Any]:
    """What makes trial values comparable: the metric, the folds and the base config's fields."""
    fields = {"tune.metric": metric, "tune.cv_folds": cv_folds}

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(item, f"{prefix}.{key}" if prefix else str(key))
        elif prefix not in ("out", "training.progress"):
            fields[prefix] = value

    walk(base.to_dict(), "")
    return json.loads(json.dumps(fields, default=str))


def open_study(
    storage: str,
    study_name: str,
    direction: str,
    settings: TuneConfig,
    scoring: dict[str, Any],
    overwrite: bool = False,
    epochs: int = 1,
) -> Any:
    """Create or load the study; a loaded one must have been scored the same way (``scoring``)."""
    optuna = import_optuna()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            rdb = optuna.storages.RDBStorage(
                storage,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=2 * HEARTBEAT_SECONDS,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=1
                ),
            )
    except Exception as err:  # SQLAlchemy reports bad URLs and drivers in several types
        raise ConfigError(f"--storage {storage!r}: cannot open it ({err})") from None
    exists = study_name in optuna.get_all_study_names(rdb)
    if exists and overwrite:
        optuna.delete_study(study_name=study_name, storage=rdb)
        exists = False
    seed = settings.seed
    if seed is not None and exists:  # resumed: do not replay the first run's random draws
        seed += len(optuna.load_study(study_name=study_name, storage=rdb).trials)
    try:
        sampler = optuna.samplers.TPESampler(seed=seed, **settings.sampler)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"tune.sampler: bad TPESampler options {settings.sampler}: {err}"
        ) from None
    study = optuna.create_study(
        storage=rdb,
        study_name=study_name,
        direction=direction,
        sampler=sampler,
        pruner=make_pruner(settings.pruner, epochs),
        load_if_exists=True,
    )
    if not exists:
        study.set_user_attr("scoring", scoring)
    else:
        stored = study.user_attrs.get("scoring", {})
        # a field only the present config has is new in mtlkit, at its default: not a change
        changed = [k for k in stored if stored[k] != scoring.get(k)]
        if changed:
            diff = "; ".join(
                f"{k}: {stored.get(k)!r} then, {scoring.get(k)!r} now" for k in changed
            )
            raise ConfigError(
                f"--study-name {study_name!r}: its trials were scored under another setup "
                f"({diff}); choose another --study-name or pass --overwrite"
            )
    return study


def check_space_fits(study: Any, space: list[Param]) -> None:
    """Optuna keeps a parameter's kind and choices for the life of a study (ranges may move)."""
    from optuna.distributions import check_distribution_compatibility

    wanted = {p.key: p.distribution() for p in space}
    for trial in study.get_trials(deepcopy=False):
        for key, stored in trial.distributions.items():
            if key not in wanted:
                continue
            try:
                check_distribution_compatibility(stored, wanted[key])
            except ValueError as err:
                raise ConfigError(
                    f"tune.space.{key}: the study {study.study_name!r} sampled it from {stored} "
                    f"({err}); choose another --study-name or pass --overwrite"
                ) from None


def finished(study: Any) -> int:
    """Complete and pruned trials (those that count towards ``tune.trials``)."""
    optuna = import_optuna()
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))
