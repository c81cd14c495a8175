"""The hash split: a row's split depends on its key and the seed only."""

import numpy as np
import pandas as pd
import pytest

from mtlkit.data.cells import DataError
from mtlkit.data.stream.split import assign_splits, hash_split, row_number_hash
from mtlkit.data.table import TableTask, load_table, split_rows


def test_codes_follow_u_thresholds():
    # u = h / 2**64: h = 0 -> u = 0 (test), h = 2**63 -> u = 0.5, h = 2**64 - 1 -> u ~ 1 (train)
    hashes = np.array([0, 2**62, 2**63, 2**64 - 1], dtype=np.uint64)
    # test_size 0.2, val_size 0.3: u = 0 -> test, 0.25 -> val, 0.5 -> train (not < 0.5)
    assert assign_splits(hashes, val_size=0.3, test_size=0.2).tolist() == [2, 1, 0, 0]
    assert assign_splits(hashes, val_size=0.31, test_size=0.2).tolist() == [2, 1, 1, 0]


def test_split_of_a_row_does_not_depend_on_the_chunking():
    rows = np.arange(10_000)
    whole = hash_split(0.15, 0.15, seed=3, rows=rows)
    for size in (1, 7, 1000, 4096):
        starts = range(0, 10_000, size)
        chunks = [hash_split(0.15, 0.15, 3, rows=rows[i : i + size]) for i in starts]
        np.testing.assert_array_equal(np.concatenate(chunks), whole)
    shuffled = np.random.default_rng(0).permutation(rows)
    np.testing.assert_array_equal(hash_split(0.15, 0.15, 3, rows=shuffled), whole[shuffled])


def test_split_sizes_are_binomial_around_the_requested_fractions():
    codes = hash_split(0.2, 0.1, seed=0, rows=np.arange(200_000))
    shares = np.bincount(codes, minlength=3) / len(codes)
    # binomial standard deviation at n = 200,000 is below 0.001; 5 of them
    np.testing.assert_allclose(shares, [0.7, 0.2, 0.1], atol=0.005)


def test_seed_changes_the_split_and_the_hash_mixes_neighbours():
    a = hash_split(0.15, 0.15, seed=0, rows=np.arange(5000))
    b = hash_split(0.15, 0.15, seed=1, rows=np.arange(5000))
    assert 0.3 < (a != b).mean() < 0.6  # independent splits disagree on ~46 % of rows
    h = row_number_hash(np.arange(2), seed=0)
    flipped = bin(int(h[0]) ^ int(h[1])).count("1")
    assert 16 < flipped < 48  # neighbouring rows: about half of the 64 bits differ


def test_rows_with_the_same_id_share_a_split_whatever_its_type():
    ids = pd.Series([7, 7.0, "7", " 7 ", 8, "8.0"] * 50, name="user")
    codes = hash_split(0.4, 0.4, seed=0, ids=ids)
    assert len(set(codes[ids.astype(str).str.strip().str.startswith("7")])) == 1
    assert len(set(codes[ids.astype(str).str.strip().str.startswith("8")])) == 1
    many = pd.Series(np.arange(20_000) % 2000, name="user")
    shares = np.bincount(hash_split(0.15, 0.15, 0, ids=many), minlength=3) / 20_000
    np.testing.assert_allclose(shares, [0.7, 0.15, 0.15], atol=0.05)  # 2,000 distinct ids


def test_a_missing_id_is_an_error_naming_the_row():
    ids = pd.Series([1.0, None, 3.0], name="user")
    ids.attrs["source"] = "clicks.parquet"
    with pytest.raises(DataError, match=r"data.id_column 'user', row 2 of 'clicks.parquet'"):
        hash_split(0.1, 0.1, 0, ids=ids)


def test_load_table_hash_split_puts_the_hashed_rows_in_each_split(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": np.arange(400.0), "y": np.arange(400.0) % 3}).to_csv(path, index=False)
    bundle = load_table(path, [TableTask("y", "regression", ["y"])], split="hash", seed=5)
    codes = hash_split(0.15, 0.15, seed=5, rows=np.arange(400))
    pre = bundle.preprocessor
    for part, name in enumerate(("train", "val", "test")):
        x = getattr(bundle, name).inputs[:, 0].double().numpy() * pre.stds["x"] + pre.means["x"]
        np.testing.assert_allclose(x, np.flatnonzero(codes == part), atol=1e-3)
    assert [len(r) for r in split_rows(400, "hash", 0.15, 0.15, 5)] == np.bincount(codes).tolist()


def test_negative_and_large_seeds_work():
    for seed in (-1, -(2**40), 2**62):
        codes = hash_split(0.15, 0.15, seed, rows=np.arange(1000))
        assert set(codes.tolist()) == {0, 1, 2}


def _splitmix64_reference(k: int, seed: int) -> int:
    """SplitMix64's output function of ``k + (s + 1)·φ`` (mod 2**64), ``s = seed mod 2**63``,
    in Python integers (Steele, Lea & Flood 2014)."""
    mask = 2**64 - 1
    z = (k + (seed % 2**63 + 1) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


@pytest.mark.parametrize("seed", [0, 7, -1, -(2**40), 2**63 + 7])
def test_row_hash_is_splitmix64_of_the_row_and_the_seed_mod_2_63(seed):
    rows = [0, 1, 12345, 2**40]
    expected = [_splitmix64_reference(k, seed) for k in rows]
    assert row_number_hash(np.array(rows), seed).tolist() == expected
    # seeds that differ by 2**63 are one split (negative seeds wrap into [0, 2**63))
    assert row_number_hash(np.array(rows), seed + 2**63).tolist() == expected
