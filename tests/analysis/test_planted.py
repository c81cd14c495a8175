"""Planted structure on ``synthetic``: two clusters of three related tasks plus a seventh task
that conflicts with both (``conflict="curvature"``: even, convex in the clusters' directions,
against their odd, saturating targets). The conflict must show in the measures, the chosen
groups must recover the clusters, and the grouped models must beat the all-in-one model."""

import numpy as np
import pytest

from mtlkit.analysis import best_partition
from mtlkit.config import Config, from_dict
from mtlkit.data import load_dataset
from mtlkit.runs import load_bundle, measure_relatedness, train_groupings

CLUSTERS = [[0, 1, 2], [3, 4, 5]]
LONER = 6
OTHERS = [t for cluster in CLUSTERS for t in cluster]


def planted_options(seed: int, conflict: str = "curvature") -> dict:
    return {
        "num_tasks": 7,
        "clusters": [0, 0, 0, 1, 1, 1, 2],
        "conflicting": [LONER],
        "conflict": conflict,
        "relatedness": 0.9,
        "n_samples": 2000,
        "seed": seed,
    }


def planted_config(seed: int, conflict: str = "curvature") -> Config:
    return from_dict(
        Config,
        {
            "data": {
                "dataset": "synthetic",
                "options": planted_options(seed, conflict),
                "batch_size": 64,
            },
            "model": {"encoder_options": {"hidden": [32]}},
            "optim": {"lr": 0.01},
            "training": {"epochs": 2, "progress": False},
            "seed": seed,
            "device": "cpu",
            "threads": 1,
        },
    )


def recovers(groups: list[list[int]], k: int) -> bool:
    """k = 3: exactly the two clusters and the loner; k = 2: the clusters are not mixed."""
    if k == 3:
        return sorted(groups) == [*CLUSTERS, [LONER]]
    return sorted(sorted(set(g) - {LONER}) for g in groups if set(g) != {LONER}) == CLUSTERS


def conflict_of(result) -> dict[str, float]:
    """The loner against the six clustered tasks: mean gradient cosine, mean affinity each way
    (``Z(6→j)``: a step on the loner, ``Z(j→6)``: a step on a clustered task) and mean cosine
    inside the clusters, for comparison."""
    z = result.affinity.numpy()
    cos = result.relations.cosine.numpy()
    within = [cos[i, j] for c in CLUSTERS for i in c for j in c if i != j]
    return {
        "cos": float(cos[LONER, OTHERS].mean()),
        "z_from": float(z[LONER, OTHERS].mean()),
        "z_to": float(z[OTHERS, LONER].mean()),
        "cos_within": float(np.mean(within)),
    }


def test_curvature_conflict_targets_follow_the_documented_formula():
    options = planted_options(3) | {"noise": 0.0, "n_samples": 300}
    bundle = load_dataset("synthetic", **options)
    same = load_dataset("synthetic", **(options | {"conflict": "sign", "conflicting": []}))
    x = bundle.train.inputs.numpy().astype(float)
    loner = bundle.train.targets["task6"].numpy()
    # even in x (y(x) = y(−x)): a quadratic form in x, which no odd, saturating 2 tanh is
    features = np.column_stack([x[:, i] * x[:, j] for i in range(20) for j in range(i, 20)])
    design = np.column_stack([features, np.ones(len(x))])
    residual = loner - design @ np.linalg.lstsq(design, loner, rcond=None)[0]
    assert np.abs(residual).max() < 1e-4 and loner.std() > 0.5
    # the clustered tasks do not depend on the loner's kind of conflict
    for t in range(6):
        assert np.array_equal(bundle.train.targets[f"task{t}"], same.train.targets[f"task{t}"])
    with pytest.raises(ValueError, match="conflict must be"):
        load_dataset("synthetic", num_tasks=2, conflict="flip")
    with pytest.raises(ValueError, match="not conflicting"):
        load_dataset("synthetic", num_tasks=2, conflicting=[0, 1], conflict="curvature")


@pytest.mark.slow
def test_planted_conflict_is_measured_and_clusters_are_recovered_in_9_of_10_seeds():
    hits = {2: 0, 3: 0}
    conflicting = 0
    for seed in range(10):
        result = measure_relatedness(planted_config(seed), every=1)
        affinity = result.affinity.numpy()
        for k in hits:
            hits[k] += recovers(best_partition(affinity, k).groups, k)
        c = conflict_of(result)
        conflicting += c["cos"] < 0 and c["z_from"] < 0 and c["z_to"] < 0 and c["cos_within"] > 0
    assert hits[2] >= 9 and hits[3] >= 9, hits
    assert conflicting >= 9, conflicting


@pytest.mark.slow
def test_grouped_models_beat_the_all_in_one_model_on_planted_tasks():
    wins = []
    for seed in range(3):
        config = planted_config(seed)
        bundle = load_bundle(config)
        a = measure_relatedness(config, bundle, every=1).affinity.numpy()
        groups = best_partition(a, 3).named(bundle.task_names)
        delta = train_groupings(config, bundle, groups, log=lambda *_: None).delta
        wins.append(delta["grouped"] > delta["all"])
    assert all(wins), wins
