"""Hyper-parameter search for configured networks with Optuna (``mtlkit tune``).

:func:`tune` runs a study of trials, each a configured run (:func:`mtlkit.runs.train_run`)
with some config fields sampled from a search space (:mod:`mtlkit.tuning.space`), scored on the
validation split or by K-fold cross-validation (:mod:`mtlkit.tuning.folds`).
"""

from mtlkit.tuning.folds import kfold_bundles
from mtlkit.tuning.space import DEFAULT_SPACE, Param, parse_space, suggest
from mtlkit.tuning.study import Objective, TuneConfig, read_tune_config
from mtlkit.tuning.tune import TuneResult, tune

__all__ = [
    "DEFAULT_SPACE",
    "Objective",
    "Param",
    "TuneConfig",
    "TuneResult",
    "kfold_bundles",
    "parse_space",
    "read_tune_config",
    "suggest",
    "tune",
]
