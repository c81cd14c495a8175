"""pairwise_transfer: each task's Δm in the pair model and their mean, as delta_m takes them."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

import mtlkit.runs.relatedness as relatedness
from mtlkit.config import Config
from mtlkit.runs import load_bundle, pairwise_transfer

CLASSIFICATION = ("accuracy", "f1", "precision", "recall")


def test_a_task_whose_single_task_metrics_are_0_is_undefined_and_out_of_the_pair_mean(
    monkeypatch,
):
    stl = {
        "species": dict.fromkeys(CLASSIFICATION, 0.5),
        "sex": dict.fromkeys(CLASSIFICATION, 0.0),
        "body_mass": {"mse": 2.0, "mae": 2.0, "r2": 0.5},
    }
    pair_test = {
        "species": dict.fromkeys(CLASSIFICATION, 0.6),  # +20 %
        "sex": dict.fromkeys(CLASSIFICATION, 0.6),  # undefined: no relative change from 0
        "body_mass": {"mse": 1.0, "mae": 1.0, "r2": 0.5},  # (50 + 50 + 0) / 3 %
    }

    def fake_train_run(config, run_dir, overwrite, bundle):
        return SimpleNamespace(test={t.name: pair_test[t.name] for t in bundle.tasks})

    monkeypatch.setattr(relatedness, "train_run", fake_train_run)
    config = Config()
    lines: list[str] = []
    got = pairwise_transfer(config, load_bundle(config), stl, log=lines.append)
    species_sex = got[("species", "sex")]
    assert species_sex["species"] == pytest.approx(20.0) and math.isnan(species_sex["sex"])
    assert species_sex["delta_m"] == pytest.approx(20.0)  # the mean over the defined task
    assert got[("species", "body_mass")]["delta_m"] == pytest.approx((20.0 + 100.0 / 3) / 2)
    assert any(line.startswith("species + sex: Δm leaves out sex accuracy: ") for line in lines)
