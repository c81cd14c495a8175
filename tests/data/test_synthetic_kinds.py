"""The synthetic dataset picks its targets by the task kind's declared properties."""

import numpy as np
import pytest

from mtlkit.data import load_dataset
from mtlkit.tasks import KINDS
from mtlkit.tasks.kinds import Regression


class Huber(Regression):
    """A regression kind defined outside mtlkit (real, scaled targets)."""

    name = "huber"

    def metrics(self):
        return ["mse", "mae", "r2"]


@pytest.fixture
def huber(monkeypatch):
    monkeypatch.setitem(KINDS, "huber", Huber())
    return "huber"


def test_a_registered_kind_with_real_targets_gets_regression_targets(huber):
    options = {"num_tasks": 2, "n_samples": 100, "seed": 3}
    own = load_dataset("synthetic", kind=huber, **options)
    reference = load_dataset("synthetic", kind="regression", **options)
    assert [t.kind for t in own.tasks] == ["huber", "huber"]
    for task in reference.task_names:
        assert np.array_equal(own.train.targets[task], reference.train.targets[task])


@pytest.mark.parametrize("kind", ["multiclass", "multilabel", "poisson"])
def test_a_kind_without_real_targets_or_two_classes_is_an_error_listing_those_that_fit(kind):
    with pytest.raises(ValueError, match=rf"\(binary, regression\), got '{kind}'"):
        load_dataset("synthetic", kind=kind, num_tasks=2, n_samples=50)
