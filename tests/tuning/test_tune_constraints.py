"""The ``tune:`` section's ranges are declared once and read by every check."""

import pytest

from mtlkit._param_validation import Interval
from mtlkit.config import ConfigError
from mtlkit.data import load_dataset
from mtlkit.tuning import TuneConfig, kfold_bundles, read_tune_config
from mtlkit.tuning.folds import KFOLD_CONSTRAINTS


def test_cv_folds_reads_the_range_kfold_bundles_declares():
    (folds,) = KFOLD_CONSTRAINTS["folds"]
    assert isinstance(folds, Interval) and folds.low == 2
    assert folds in TuneConfig._parameter_constraints["cv_folds"]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"trials": 0}, "tune.trials: expected a value >= 1, got 0"),
        ({"cv_folds": 1}, "tune.cv_folds: expected a value >= 2 or None, got 1"),
        ({"direction": "up"}, "tune.direction: expected one of 'minimize', 'maximize' or None"),
    ],
)
def test_out_of_range_values_are_refused_naming_the_field(section, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(")):
        read_tune_config(section)


def test_the_bounds_themselves_are_accepted():
    settings = read_tune_config({"trials": 1, "cv_folds": 2, "direction": "maximize"})
    assert (settings.trials, settings.cv_folds, settings.direction) == (1, 2, "maximize")
    assert read_tune_config(None).cv_folds is None


def test_kfold_bundles_refuses_the_folds_the_tune_section_refuses():
    bundle = load_dataset("penguins")
    with pytest.raises(ConfigError, match="kfold_bundles.folds: expected a value >= 2, got 1"):
        kfold_bundles(bundle, 1)
    assert len(kfold_bundles(bundle, 2)) == 2
