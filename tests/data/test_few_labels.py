"""``labelled``: a built-in task with few training labels beside tasks with many."""

from __future__ import annotations

import pytest
import torch

from mtlkit.data import load_dataset
from mtlkit.tasks import IGNORE_INDEX


def _count(bundle, task: str, split: str = "train") -> int:
    return int(bundle.task(task).label_mask(getattr(bundle, split).targets[task]).sum())


def test_only_the_named_task_loses_training_labels():
    full = load_dataset("digits", seed=2)
    few = load_dataset("digits", seed=2, labelled={"digit": 50})
    assert _count(few, "digit") == 50
    assert _count(few, "parity") == _count(full, "parity") == len(full.train)
    kept = few.train.targets["digit"] != IGNORE_INDEX
    assert torch.equal(few.train.targets["digit"][kept], full.train.targets["digit"][kept])
    for split in ("val", "test"):
        assert torch.equal(
            getattr(few, split).targets["digit"], getattr(full, split).targets["digit"]
        )


def test_a_regression_task_keeps_n_labels_and_is_scaled_on_them():
    few = load_dataset("penguins", labelled={"body_mass": 20})
    assert _count(few, "body_mass") == 20
    kept = few.train.targets["body_mass"][~torch.isnan(few.train.targets["body_mass"])]
    assert float(kept.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(kept.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)


def test_the_kept_labels_depend_on_the_seed():
    a = load_dataset("digits", seed=0, labelled={"digit": 30}).train.targets["digit"]
    b = load_dataset("digits", seed=1, labelled={"digit": 30}).train.targets["digit"]
    assert not torch.equal(a != IGNORE_INDEX, b != IGNORE_INDEX)


@pytest.mark.parametrize(
    ("labelled", "message"),
    [
        ({"digits": 5}, "unknown task 'digits'; tasks are digit, parity, ge5"),
        ({"digit": 0}, r"labelled\['digit'\] must be an integer in \[1, 1079\]"),
        ({"digit": 5000}, r"labelled\['digit'\] must be an integer in \[1, 1079\]"),
        ({"digit": 2.5}, r"labelled\['digit'\] must be an integer"),
    ],
)
def test_bad_counts_and_tasks_are_named(labelled, message):
    with pytest.raises(ValueError, match=message):
        load_dataset("digits", labelled=labelled)
