"""Configured relatedness runs: affinity from one short training run, grouped training, Δm.

- :func:`measure_relatedness` trains the configured model once with an
  :class:`~mtlkit.analysis.affinity.AffinityRecorder` (lookahead affinity + gradient relations
  every ``every`` steps) and reports the recorder's overhead;
- :func:`train_groupings` trains the all-in-one model, the single-task models and one model per
  group, and reports every task's test metrics and Δm (vs the single-task models) of each;
- :func:`pairwise_transfer` trains every pair of tasks and reports each task's gain over its
  single-task model (the direct, expensive measure of transfer).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mtlkit.analysis.affinity import AffinityRecorder
from mtlkit.analysis.delta import delta_m, delta_m_terms
from mtlkit.analysis.gradients import GradientRelations
from mtlkit.config import Config, ConfigError, with_overrides
from mtlkit.data import DatasetBundle
from mtlkit.runs.build import build_model, build_trainer, load_bundle, prepare_transfer
from mtlkit.runs.train import train_loader, train_run
from mtlkit.training.checkpoint import seed_everything

Results = dict[str, dict[str, float]]


@dataclass
class RelatednessResult:
    """Affinity ``Z[i, j] = Z(i→j)`` averaged over one run, gradient relations and timings.

    ``train_seconds``: the whole ``fit`` (callback included); ``callback_seconds``: time inside
    the recorder; ``overhead`` = callback / (train − callback), the relative slow-down.
    """

    names: list[str]
    affinity: Tensor
    relations: GradientRelations
    steps: list[int]
    every: int
    lookahead_lr: float | None
    train_seconds: float
    callback_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def overhead(self) -> float:
        return self.callback_seconds / max(self.train_seconds - self.callback_seconds, 1e-12)


def measure_relatedness(
    config: Config,
    bundle: DatasetBundle | None = None,
    every: int = 1,
    lr: float | None = None,
) -> RelatednessResult:
    """Train ``config``'s model once, recording lookahead affinity every ``every`` steps."""
    seed_everything(config.seed)
    if getattr(config, "threads", None) is not None:
        torch.set_num_threads(config.threads)
    bundle = bundle or load_bundle(config)
    if len(bundle.tasks) < 2:
        raise ConfigError("relatedness needs at least two tasks")
    model, transfer = prepare_transfer(config, build_model(config, bundle), bundle)
    if not any(p.requires_grad for p in model.shared_parameters()):
        raise ConfigError(
            f"model.arch: {config.model.arch!r} shares no parameters between tasks, so tasks "
            "cannot affect each other; measure relatedness with a shared model such as hps"
        )
    trainer = build_trainer(config, model, bundle, transfer)
    recorder = AffinityRecorder(every=every, lr=lr)
    trainer.step_callbacks.append(recorder)
    loader = train_loader(config, bundle)
    start = time.perf_counter()
    trainer.fit(
        loader, bundle.val, epochs=config.training.epochs, patience=config.training.patience
    )
    seconds = time.perf_counter() - start
    if not recorder.steps:
        raise ConfigError("relatedness: no training step was recorded (empty training data?)")
    return RelatednessResult(
        names=[t.name for t in bundle.tasks],
        affinity=recorder.affinity(),
        relations=recorder.relations(),
        steps=list(recorder.steps),
        every=every,
        lookahead_lr=lr,
        train_seconds=seconds,
        callback_seconds=recorder.seconds,
        history=trainer.history.epochs,
    )


def metrics_of(bundle: DatasetBundle) -> dict[str, list[str]]:
    return {t.name: list(t.metrics) for t in bundle.tasks}


def subset_config(config: Config, names: Sequence[str], arch: str | None = None) -> Config:
    overrides: dict[str, Any] = {"training.progress": config.training.progress}
    if arch is not None:
        overrides["model.arch"] = arch
        if arch == "stl":
            overrides |= {"weighting.name": "ew", "weighting.options": {}}
    monitor = config.training.monitor
    if monitor != "loss" and monitor.partition(":")[0] not in names:
        overrides["training.monitor"] = "loss"
    if len(names) == 1 and config.weighting.name != "ew":
        overrides |= {"weighting.name": "ew", "weighting.options": {}}
    return with_overrides(config, overrides)


@dataclass
class GroupTraining:
    """Test metrics of every task for each model kind, and Δm (%) against ``stl``."""

    results: dict[str, Results]
    delta: dict[str, float]
    groups: list[list[str]]
    run_dirs: dict[str, str | None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": self.groups,
            "test": self.results,
            "delta_m": self.delta,
            "run_dirs": self.run_dirs,
        }


def train_groupings(
    config: Config,
    bundle: DatasetBundle,
    groups: Sequence[Sequence[str]],
    run_dir: str | Path | None = None,
    stl: Results | None = None,
    log=print,
) -> GroupTraining:
    """Train all-in-one (``config``'s arch on every task), single-task (``stl``) and grouped
    models (one ``config``-arch model per group; a singleton group is its single-task model, a
    group of every task the all-in-one model) and
    compare their test metrics; Δm is against the single-task models."""
    names = [t.name for t in bundle.tasks]
    covered = sorted(n for g in groups for n in g)
    if covered != sorted(names):
        raise ValueError(f"groups must partition the tasks {names}; got {list(groups)}")
    root = Path(run_dir) if run_dir is not None else None
    dirs: dict[str, str | None] = {}

    def where(name: str) -> Path | None:
        path = root / name if root is not None else None
        dirs[name] = str(path) if path is not None else None
        return path

    if stl is None:
        log("training single-task models (stl) ...")
        stl = train_run(subset_config(config, names, "stl"), where("stl"), True, bundle).test
    log(f"training the all-in-one model ({config.model.arch}) ...")
    all_in_one = train_run(subset_config(config, names), where("all"), True, bundle).test
    grouped: Results = {}
    for index, group in enumerate(groups):
        group = list(group)
        if len(group) == 1:
            grouped[group[0]] = stl[group[0]]
            continue
        if sorted(group) == sorted(names):  # one group of every task: the all-in-one model
            grouped.update(all_in_one)
            continue
        log(f"training group {index + 1}: {', '.join(group)} ...")
        result = train_run(
            subset_config(config, group),
            where(f"group{index + 1}"),
            True,
            bundle.select_tasks(group),
        )
        grouped.update(result.test)
    metrics = metrics_of(bundle)
    results = {"stl": dict(stl), "all": all_in_one, "grouped": {n: grouped[n] for n in names}}
    delta = {
        "stl": 0.0,
        "all": delta_m(all_in_one, stl, metrics),
        "grouped": delta_m(results["grouped"], stl, metrics),
    }
    return GroupTraining(results, delta, [list(g) for g in groups], dirs)


def pairwise_transfer(
    config: Config,
    bundle: DatasetBundle,
    stl: Results,
    run_dir: str | Path | None = None,
    log=print,
) -> dict[tuple[str, str], dict[str, float]]:
    """Train every pair of tasks; ``{(a, b): {a: gain_a, b: gain_b, "delta_m": mean}}`` where
    ``gain_t`` is task t's Δm (%) in the pair model against its single-task model (NaN when
    undefined, e.g. every single-task metric 0; the mean is then the other task's, see
    :func:`mtlkit.analysis.delta_m_terms`; what is left out is logged)."""
    metrics = metrics_of(bundle)
    out: dict[tuple[str, str], dict[str, float]] = {}
    for a, b in itertools.combinations([t.name for t in bundle.tasks], 2):
        log(f"training pair {a} + {b} ...")
        path = Path(run_dir) / f"pair-{a}-{b}" if run_dir is not None else None
        test = train_run(
            subset_config(config, [a, b]), path, True, bundle.select_tasks([a, b])
        ).test
        terms = delta_m_terms(test, stl, {t: metrics[t] for t in (a, b)})
        if terms.left_out:
            log(f"{a} + {b}: {terms.note()}")
        out[(a, b)] = dict(terms.task_gains) | {"delta_m": terms.value}
    return out
