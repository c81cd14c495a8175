"""In-process pieces of the distributed support (no process group needed)."""

from __future__ import annotations

import pytest
import torch
from dist_helpers import make_problem

from mtlkit.data import BatchLoader, MultiInputDataset
from mtlkit.distributed import DistContext, gramian_factor
from mtlkit.distributed.reduce import label_counts
from mtlkit.distributed.sampler import shard_bounds
from mtlkit.models import make_model
from mtlkit.models.encoders import MLP
from mtlkit.tasks import Task
from mtlkit.training import Trainer
from mtlkit.weighting import make_weighting


@pytest.mark.parametrize("world", [2, 3])
def test_single_input_shards_concatenate_to_the_one_process_batch(world):
    _, data = make_problem(n=50)
    whole = list(BatchLoader(data, 15, seed=4))
    shards = [list(BatchLoader(data, 15, seed=4, rank=r, world_size=world)) for r in range(world)]
    assert all(len(s) == len(whole) for s in shards)
    for b, (x, y) in enumerate(whole):
        torch.testing.assert_close(torch.cat([s[b][0] for s in shards]), x)
        for name in y:
            torch.testing.assert_close(
                torch.cat([s[b][1][name] for s in shards]), y[name], equal_nan=True
            )


@pytest.mark.parametrize("sampling", ["joint", "round_robin", "proportional"])
def test_multi_input_shards_concatenate_to_the_one_process_batch(sampling):
    g = torch.Generator().manual_seed(0)
    data = MultiInputDataset(
        {
            "a": (torch.randn(37, 3, generator=g), torch.randn(37, 1, generator=g)),
            "b": (torch.randn(20, 3, generator=g), torch.randn(20, 1, generator=g)),
        }
    )
    whole = list(BatchLoader(data, 8, seed=1, sampling=sampling))
    shards = [
        list(BatchLoader(data, 8, seed=1, sampling=sampling, rank=r, world_size=2))
        for r in range(2)
    ]
    for b, (x, y) in enumerate(whole):
        assert set(shards[0][b][1]) == set(y) == set(shards[1][b][1])  # same task(s)
        for name in y:
            torch.testing.assert_close(torch.cat([s[b][0][name] for s in shards]), x[name])
            torch.testing.assert_close(
                torch.cat([s[b][1][name] for s in shards]), y[name], equal_nan=True
            )


def test_shard_bounds_cover_every_row_once():
    for n in range(0, 12):
        bounds = [shard_bounds(n, r, 3) for r in range(3)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(bounds[r][1] == bounds[r + 1][0] for r in range(2))


def test_gramian_factor():
    j = torch.randn(3, 10, dtype=torch.float64)
    gramian = j @ j.T
    factor = gramian_factor(gramian)
    torch.testing.assert_close(factor @ factor.T, gramian)
    singular = torch.ones(3, 3, dtype=torch.float64)
    torch.testing.assert_close(gramian_factor(singular) @ gramian_factor(singular).T, singular)


def test_label_counts_follow_the_loss_normalisation():
    tasks, data = make_problem(n=50)
    counts = label_counts(tasks, data.targets)
    labelled_r1 = int((~data.targets["r1"].isnan()).sum())
    expected = [50, labelled_r1, int((data.targets["b2"] != -100).sum())]
    assert counts.tolist() == expected
    assert label_counts(tasks, {"r0": data.targets["r0"]}).tolist() == [50, 0, 0]


def test_representation_mode_refuses_direction_strategies_with_several_processes():
    tasks, _ = make_problem()
    model = make_model("hps", lambda: MLP(6, hidden=(8,)), tasks)
    fake = DistContext(0, 2, 0, "gloo", torch.device("cpu"), 1.0)  # fails before any collective
    with pytest.raises(ValueError, match="representation"):
        Trainer(
            model,
            tasks,
            make_weighting("graddrop", len(tasks), mode="representation"),
            distributed=fake,
        )


@pytest.mark.parametrize(
    "task, width",
    [
        (Task("tags", "multilabel", num_outputs=3), 3),
        (Task("xy", "regression", num_outputs=2), 2),
        (Task("y", "regression"), 1),
        (Task("c", "multiclass", num_outputs=3), None),
    ],
)
def test_an_empty_shard_gives_zero_loss_and_zero_count(task, width):
    """A rank whose shard of a batch is empty (fewer rows than processes), also for 2-D targets."""
    prediction = torch.zeros(0, task.num_outputs, requires_grad=True)
    target = torch.zeros(0, width) if width else torch.zeros(0, dtype=torch.long)
    assert task.row_mask(target).shape == (0,)
    loss = task.compute_loss(prediction, target)
    loss.backward()
    assert loss.item() == 0.0 and prediction.grad.shape == prediction.shape
    assert label_counts([task], {task.name: target}).tolist() == [0.0]
