"""``--task NAME:KIND:COLUMN:class_weight=...`` and ``tasks.<name>.pos_weight`` reach the tasks."""

import numpy as np
import pandas as pd
import pytest
import torch

from mtlkit.cli.flags import config_overrides
from mtlkit.cli.main import build_parser
from mtlkit.config import ConfigError, load_config
from mtlkit.runs import load_bundle
from mtlkit.tasks import IGNORE_INDEX


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    frame["grade"] = rng.choice(["A", "B", "C"], n, p=[0.6, 0.3, 0.1])
    frame["passed"] = rng.choice(["no", "yes"], n, p=[0.8, 0.2])
    frame["score"] = rng.normal(size=n)
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    return path


def _bundle(table, *task_flags, extra=()):
    argv = ["train", "--data", str(table)]
    for flag in task_flags:
        argv += ["--task", flag]
    args = build_parser().parse_args([*argv, *extra])
    return load_bundle(load_config(None, config_overrides(args)))


def test_task_flag_options_give_balanced_weights_from_the_training_split(table):
    bundle = _bundle(
        table,
        "grade:multiclass:grade:class_weight=balanced",
        "passed:binary:passed:pos_weight=balanced",
        "score:regression:score",
    )
    grade = bundle.task("grade")
    y = bundle.train.targets["grade"]
    counts = torch.bincount(y[y != IGNORE_INDEX], minlength=3).double()
    # balanced: every class carries the same total weight n / K
    totals = torch.tensor(grade.class_weight, dtype=torch.float64) * counts
    torch.testing.assert_close(totals, torch.full_like(totals, float(counts.sum()) / 3))
    passed = bundle.train.targets["passed"]
    positives = int((passed == 1).sum())
    assert bundle.task("passed").pos_weight == pytest.approx(
        [(len(passed) - positives) / positives]
    )


def test_explicit_weights_from_set_by_class_name(table):
    bundle = _bundle(
        table,
        "grade:multiclass:grade",
        "passed:binary:passed",
        extra=["--set", "tasks.passed.class_weight={'no': 1, 'yes': 4}"],
    )
    names = list(bundle.task("passed").class_names)
    assert bundle.task("passed").class_weight == [4.0 if c == "yes" else 1.0 for c in names]


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("score:regression:score:class_weight=balanced", "task 'score': class_weight applies"),
        ("passed:binary:passed:weight=2", "unknown option 'weight'"),
        ("passed:binary:passed:pos_weight=0", "task 'passed': pos_weight weights must be"),
    ],
)
def test_bad_task_options_are_errors_naming_the_task(table, flag, message):
    with pytest.raises(ConfigError, match=message):
        _bundle(table, flag, "grade:multiclass:grade")


def test_an_unquoted_yaml_boolean_label_is_an_error_that_says_so(table):
    with pytest.raises(ConfigError, match="unknown class 'False'.*quote the label"):
        _bundle(
            table,
            "passed:binary:passed",
            "grade:multiclass:grade",
            extra=["--set", "tasks.passed.class_weight={no: 1}"],
        )
