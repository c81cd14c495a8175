"""The synthetic recommender log: ids, click/conversion labels, relatedness, CLI, Parquet."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from mtlkit.cli.main import main
from mtlkit.data import load_dataset
from mtlkit.data.builtin.recsys_synthetic import RecsysGenerator, zipf_share
from mtlkit.tasks.kinds.base import IGNORE_INDEX

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "recsys"))

import write_parquet  # noqa: E402

SMALL = {"n_users": 200, "n_items": 1000, "n_contexts": 10}


def test_conversion_is_labelled_exactly_where_clicked():
    bundle = load_dataset("recsys_synthetic", n_rows=3000, **SMALL)
    assert bundle.task_names == ["click", "conversion"]
    for split in (bundle.train, bundle.val, bundle.test):
        click = split.targets["click"].numpy()
        conversion = split.targets["conversion"].numpy()
        assert set(np.unique(click)) <= {0, 1}
        np.testing.assert_array_equal(conversion != IGNORE_INDEX, click == 1)
        assert set(np.unique(conversion[click == 1])) <= {0, 1}


def test_rates_follow_the_options():
    rows = RecsysGenerator(click_rate=0.3, conversion_rate=0.4, **SMALL).chunk(40000)
    clicked = rows["click"] == 1
    assert rows["click"].mean() == pytest.approx(0.3, abs=0.02)
    assert rows["conversion"][clicked].mean() == pytest.approx(0.4, abs=0.03)


@pytest.mark.parametrize("exponent", [0.0, 0.8, 1.2])
def test_top_one_percent_of_items_hold_the_analytic_zipf_share(exponent):
    n_items, n_rows = 10000, 40000
    rows = RecsysGenerator(n_items=n_items, zipf=exponent).chunk(n_rows)
    counts = np.bincount(rows["item"], minlength=n_items)
    top = n_items // 100
    # the most frequent ids by rank (the ids themselves are permuted)
    share = np.isin(rows["item_rank"], np.arange(top)).mean()
    expected = zipf_share(top, n_items, exponent)
    assert share == pytest.approx(expected, abs=0.02)
    assert np.sort(counts)[::-1][:top].sum() / n_rows >= share - 0.02
    if exponent == 0.0:
        assert expected == pytest.approx(0.01)


def test_relatedness_raises_the_click_conversion_correlation():
    logits, labels = [], []
    for rho in (0.0, 0.5, 1.0):
        rows = RecsysGenerator(relatedness=rho, click_rate=0.3, **SMALL).chunk(20000)
        logits.append(np.corrcoef(rows["click_logit"], rows["conversion_logit"])[0, 1])
        clicked = rows["click"] == 1
        labels.append(np.corrcoef(rows["click_logit"][clicked], rows["conversion"][clicked])[0, 1])
    assert logits == sorted(logits) and labels == sorted(labels)
    assert abs(logits[0]) < 0.05 and logits[1] == pytest.approx(0.5, abs=0.05)
    assert logits[2] == pytest.approx(1.0)


def test_same_seed_same_data_and_width_stays_bounded():
    a = load_dataset("recsys_synthetic", n_rows=500, seed=3, **SMALL)
    b = load_dataset("recsys_synthetic", n_rows=500, seed=3, **SMALL)
    c = load_dataset("recsys_synthetic", n_rows=500, seed=4, **SMALL)
    np.testing.assert_array_equal(a.train.inputs.numpy(), b.train.inputs.numpy())
    np.testing.assert_array_equal(a.train.targets["click"], b.train.targets["click"])
    assert not np.array_equal(a.train.inputs.numpy(), c.train.inputs.numpy())
    huge = RecsysGenerator(n_users=10**6, n_items=10**6, n_numeric=32, hash_buckets=48)
    assert huge.features(huge.chunk(10)).shape[1] <= 256


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"relatedness": 1.5}, "relatedness must be in \\[0, 1\\], got 1.5"),
        ({"zipf": -1.0}, "zipf must be >= 0"),
        ({"n_items": 0}, "n_items must be an integer >= 1"),
        ({"click_rate": 1.0}, "click_rate must be in \\(0, 1\\)"),
        ({"hash_buckets": 100}, "hash_buckets must be in \\[1, 48\\]"),
        ({"n_rows": 2}, "n_rows must be an integer >= 5"),
        ({"n_user": 5}, "has no option 'n_user'"),
    ],
)
def test_bad_options_name_the_option(options, message):
    with pytest.raises(ValueError, match=message):
        load_dataset("recsys_synthetic", **options)


@pytest.mark.parametrize("arch", ["mmoe", "ple", "hps"])
def test_cli_trains_with_the_conversion_labels_masked(arch, tmp_path, capsys):
    out = tmp_path / arch
    args = ["train", "--dataset", "recsys_synthetic", "--arch", arch, "--epochs", "1"]
    args += ["--no-progress", "--batch-size", "128", "--out", str(out)]
    args += ["--set", "data.options={n_rows: 1000, n_users: 100, n_items: 300, click_rate: 0.3}"]
    assert main(args) == 0
    assert "conversion" in capsys.readouterr().out
    assert (out / "config.yaml").exists()


def test_parquet_script_writes_rows_columns_and_nulls(tmp_path):
    path = tmp_path / "clicks.parquet"
    argv = ["--rows", "2500", "--out", str(path), "--chunk-rows", "1000", "--seed", "1"]
    argv += ["--n-users", "50", "--n-items", "80", "--n-contexts", "5"]
    assert write_parquet.main(argv) == 0
    file = pq.ParquetFile(path)
    assert file.metadata.num_rows == 2500 and file.metadata.num_row_groups == 3
    table = file.read().to_pandas()
    assert list(table.columns[:3]) == ["user_id", "item_id", "context_id"]
    assert [c for c in table.columns if c.startswith("x")] == [f"x{j}" for j in range(8)]
    assert table["item_id"].between(0, 79).all() and table["user_id"].between(0, 49).all()
    np.testing.assert_array_equal(table["conversion"].isna(), table["click"] == 0)
    assert table["click"].sum() > 0 and table["conversion"].notna().sum() > 0
    first = RecsysGenerator(n_users=50, n_items=80, n_contexts=5, seed=1).chunk(1000, 0)
    np.testing.assert_array_equal(table["item_id"][:1000], first["item"])
    np.testing.assert_array_equal(table["click"][:1000], first["click"])
