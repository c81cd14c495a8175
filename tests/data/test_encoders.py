"""TabularPreprocessor's streaming statistics and categorical encoders (mtlkit.data.tabular,
mtlkit.data.encoders): exact references, chunking invariance, layout, storage and errors."""

from __future__ import annotations

import json
import logging
import statistics
import struct
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtlkit.data import EmbeddingSpec, TabularPreprocessor, encoders
from mtlkit.data.cells import DataError
from mtlkit.data.encoders import (
    MedianSample,
    RunningMoments,
    default_embedding_dim,
    hash_codes,
    select_vocabulary,
)

LABELS = ["a", "b", "c", "d", "e", "1", "1.0", "2"]


def _chunks(frame: pd.DataFrame, cuts: list[int]) -> list[pd.DataFrame]:
    bounds = [0, *sorted({c % (len(frame) + 1) for c in cuts}), len(frame)]
    return [frame.iloc[lo:hi] for lo, hi in zip(bounds, bounds[1:])]


def _fit_in_chunks(pre: TabularPreprocessor, chunks: list[pd.DataFrame]) -> TabularPreprocessor:
    for chunk in chunks:
        pre.partial_fit(chunk)
    return pre.finish()


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def _same_mean(a: float, b: float, values) -> bool:
    """Equal to 1e-12 of the largest |value| (a mean near 0 has no relative precision)."""
    return abs(a - b) <= 1e-12 * max(abs(v) for v in values)


# ----------------------------------------------------------------------- numeric statistics
# values on a 1e-9 grid: a spread near 1e-200 would underflow when squared (std 0 -> 1)
frames = st.integers(2, 60).flatmap(
    lambda n: st.fixed_dictionaries(
        {
            "x": st.lists(
                st.one_of(st.none(), st.floats(-1e6, 1e6).map(lambda v: round(v, 9))),
                min_size=n,
                max_size=n,
            ),
            "c": st.lists(st.one_of(st.none(), st.sampled_from(LABELS)), min_size=n, max_size=n),
        }
    )
)


def _frame(columns: dict) -> pd.DataFrame:
    return pd.DataFrame({"x": pd.array(columns["x"], dtype="Float64"), "c": columns["c"]})


@settings(max_examples=80, deadline=None)
@given(columns=frames)
def test_mean_std_median_are_the_exact_ones_of_the_filled_column(columns):
    frame = _frame(columns)
    present = [v for v in columns["x"] if v is not None]
    if not present:
        return
    pre = TabularPreprocessor(["x"], ["c"]).fit(frame)
    median = float(np.median(present))
    filled = [median if v is None else v for v in columns["x"]]
    assert pre.medians["x"] == median
    assert _same_mean(pre.means["x"], statistics.fmean(filled), filled)
    expected_std = statistics.pstdev(filled) if len(set(present)) > 1 else 1.0
    assert _rel(pre.stds["x"], expected_std) <= 1e-12
    assert pre.indicators == (["x"] if None in columns["x"] else [])


@settings(max_examples=80, deadline=None)
@given(
    columns=frames,
    cuts=st.lists(st.integers(0, 60), max_size=6),
    onehot_max=st.integers(0, 6),
    max_categories=st.integers(1, 8),
    min_frequency=st.integers(1, 3),
)
def test_partial_fit_over_any_chunking_equals_fit_on_the_whole_frame(
    columns, cuts, onehot_max, max_categories, min_frequency
):
    frame = _frame(columns)
    if frame["x"].isna().all():
        return
    options = {
        "onehot_max": onehot_max,
        "max_categories": max_categories,
        "min_frequency": min_frequency,
    }
    whole = TabularPreprocessor(["x"], ["c"], **options).fit(frame)
    chunked = _fit_in_chunks(TabularPreprocessor(["x"], ["c"], **options), _chunks(frame, cuts))
    assert chunked.medians == whole.medians
    assert _same_mean(chunked.means["x"], whole.means["x"], frame["x"].dropna())
    assert _rel(chunked.stds["x"], whole.stds["x"]) <= 1e-12
    assert chunked.categories == whole.categories
    assert chunked.encoders == whole.encoders
    assert chunked.notes == whole.notes
    assert chunked.embedding_specs == whole.embedding_specs
    a, b = chunked.transform(frame), whole.transform(frame)
    n_codes = len(whole.embedding_specs)
    assert np.array_equal(a[:, 1:], b[:, 1:])  # indicators, one-hot and codes: identical
    assert np.allclose(a[:, 0], b[:, 0], rtol=1e-6, atol=1e-6)
    assert a.shape[1] == whole.n_dense + n_codes


def test_moments_keep_their_precision_far_from_zero():
    values = 1e9 + np.arange(1000) * 1e-3
    moments = RunningMoments()
    for chunk in np.array_split(values, 7):
        moments.update(chunk)
    mean, std = moments.filled(0, 0.0)
    assert _rel(mean, statistics.fmean(values.tolist())) <= 1e-15
    assert _rel(std, statistics.pstdev(values.tolist())) <= 1e-9  # values carry ~1e-7 error


def test_a_constant_column_is_centred_with_std_one():
    frame = pd.DataFrame({"x": [0.1, None, 0.1, 0.1]})
    pre = TabularPreprocessor(["x"]).fit(frame)
    assert pre.stds == {"x": 1.0}
    assert pre.transform(frame)[:, 0].tolist() == [0.0] * 4


# --------------------------------------------------------------------- the median's sample
def test_median_is_exact_up_to_the_capacity_then_a_chunking_free_sample(monkeypatch):
    rng = np.random.default_rng(0)
    values = rng.lognormal(size=3000)
    exact = MedianSample(capacity=3000)
    exact.update(values)
    assert exact.median() == np.median(values)

    samples = []
    for sizes in ([3000], [1, 999, 2000], [250] * 12):
        sample = MedianSample(capacity=500, seed=3)
        for chunk in np.split(values, np.cumsum(sizes)[:-1]):
            sample.update(chunk)
        samples.append(sample)
    kept = [np.sort(s.sample()) for s in samples]
    assert all(np.array_equal(kept[0], k) for k in kept)
    assert len(kept[0]) == 500 and np.isin(kept[0], values).all()
    # a uniform sample of 500: its median lies within the 45%-55% quantiles of the data
    low, high = np.quantile(values, [0.45, 0.55])
    assert low < samples[0].median() < high
    for seed in (4, -7):  # any integer seed (a run's seed may be negative)
        other_seed = MedianSample(capacity=500, seed=seed)
        other_seed.update(values)
        assert not np.array_equal(np.sort(other_seed.sample()), kept[0])


def test_preprocessor_median_above_the_sample_size_does_not_depend_on_chunking(monkeypatch):
    monkeypatch.setattr("mtlkit.data.tabular.MEDIAN_SAMPLE", 100)
    frame = pd.DataFrame({"x": np.random.default_rng(1).normal(size=1000)})
    whole = TabularPreprocessor(["x"]).fit(frame)
    chunked = _fit_in_chunks(TabularPreprocessor(["x"]), _chunks(frame, [7, 300, 301, 999]))
    assert chunked.medians == whole.medians
    assert whole.medians["x"] != float(np.median(frame["x"]))  # a sample's median


# ------------------------------------------------------------------------------ vocabulary
def test_vocabulary_keeps_the_most_frequent_ties_by_label_then_sorts_by_label():
    counts = Counter({"b": 3, "a": 3, "c": 3, "d": 1, "e": 5})
    vocabulary = select_vocabulary(counts, max_categories=3, min_frequency=1)
    assert vocabulary.categories == ["a", "b", "e"]  # e (5), then a and b of the 3-way tie
    assert (vocabulary.distinct, vocabulary.frequent) == (5, 5)
    assert vocabulary.kept_share == pytest.approx(11 / 15)
    rare = select_vocabulary(counts, max_categories=10, min_frequency=3)
    assert rare.categories == ["a", "b", "c", "e"] and rare.frequent == 4


def test_rare_and_unseen_values_share_code_zero_and_count_as_unseen(caplog):
    train = pd.DataFrame({"c": ["u1"] * 3 + ["u2"] * 2 + ["u3"] + [None]})
    with caplog.at_level(logging.INFO, logger="mtlkit.data"):
        pre = TabularPreprocessor([], ["c"], onehot_max=0, min_frequency=2).fit(train)
    note = (
        "c: 3 distinct training values, kept the 2 seen at least 2 times (83% of rows); "
        "the rest share one embedding row"
    )
    assert pre.notes == [note] and note in caplog.messages
    new = pd.DataFrame({"c": ["u2", "u3", "u9", None, "u1"]})
    assert pre.transform(new)[:, 0].tolist() == [2, 0, 0, 0, 1]
    assert pre.coverage(new) == {"all_features_missing": 1, "unseen_category": 2}


def test_canonical_labels_are_one_category():
    pre = TabularPreprocessor([], ["c"], onehot_max=0).fit(pd.DataFrame({"c": [1, 2, 2]}))
    codes = pre.transform(pd.DataFrame({"c": ["1.0", " 2 ", 1e0]}))[:, 0]
    assert codes.tolist() == [1, 2, 1]


# ---------------------------------------------------------------------- choice and layout
def test_layout_numeric_indicators_onehot_then_codes():
    train = pd.DataFrame(
        {
            "x": [1.0, None, 3.0, 4.0],
            "small": ["p", "q", "p", "q"],
            "big": ["a", "b", "c", "d"],
            "tag": ["t1", "t2", None, "t1"],
        }
    )
    pre = TabularPreprocessor(
        ["x"], ["big", "small", "tag"], onehot_max=3, hash_buckets={"tag": 50}
    ).fit(train)
    assert pre.encoders == {"big": "embedding", "small": "onehot", "tag": "hash"}
    assert pre.feature_names == ["x", "x__missing", "small=p", "small=q", "big__code", "tag__code"]
    assert pre.n_dense == 4
    assert pre.embedding_specs == [EmbeddingSpec("big", 5, 4), EmbeddingSpec("tag", 51, 14)]
    out = pre.transform(train.iloc[::-1])
    assert out.dtype == np.float32 and out.shape == (4, 6)
    assert out[:, 4].tolist() == [4, 3, 2, 1]  # 1 + index of d, c, b, a
    tags = out[:, 5]
    assert tags[1] == 0 and tags[0] == tags[3] != 0 and 1 <= tags.max() <= 50


@pytest.mark.parametrize("onehot_max, encoder", [(3, "onehot"), (2, "embedding")])
def test_a_column_is_one_hot_up_to_onehot_max_categories(onehot_max, encoder):
    frame = pd.DataFrame({"c": ["a", "b", "c", None]})
    assert TabularPreprocessor([], ["c"], onehot_max=onehot_max).fit(frame).encoders == {
        "c": encoder
    }


def test_embedding_dim_overrides_the_rule_and_embeds_a_small_column():
    frame = pd.DataFrame({"c": ["a", "b"]})
    pre = TabularPreprocessor([], ["c"], embedding_dim={"c": 7}).fit(frame)
    assert pre.embedding_specs == [EmbeddingSpec("c", 3, 7)]


@pytest.mark.parametrize(
    "n, dim",  # fast.ai's emb_sz_rule round(1.6 * n ** 0.56), worked out by hand, capped at 32
    [(2, 2), (3, 3), (10, 6), (100, 21), (200, 31), (250, 32), (1_000_001, 32)],
)
def test_default_embedding_dim_rule(n, dim):
    assert default_embedding_dim(n) == dim


# ------------------------------------------------------------------------------- hashing
def test_hash_codes_are_uniform_and_the_same_across_chunkings_and_storage():
    values = pd.Series([f"user{i}" for i in range(2000)] + [None])
    codes = hash_codes(values, 100)
    assert codes[-1] == 0 and codes[:-1].min() >= 1 and codes[:-1].max() <= 100
    per_bucket = np.bincount(codes[:-1], minlength=101)[1:]
    assert per_bucket.min() >= 5 and per_bucket.max() <= 40  # about uniform (20 per bucket)
    pieces = np.concatenate([hash_codes(values[:700], 100), hash_codes(values[700:], 100)])
    assert np.array_equal(pieces, codes)
    pre = TabularPreprocessor([], ["c"], hash_buckets={"c": 100}).fit(pd.DataFrame({"c": [1]}))
    same = pre.transform(pd.DataFrame({"c": [3, 3.0, "3"]}))[:, 0]
    assert same[0] == same[1] == same[2] != 0


_M64 = 2**64 - 1


def _siphash24(key: bytes, message: bytes) -> int:
    """SipHash-2-4 (Aumasson & Bernstein, 2012), written from the paper as an oracle."""

    def rotl(x: int, b: int) -> int:
        return ((x << b) | (x >> (64 - b))) & _M64

    def sip_round(v0: int, v1: int, v2: int, v3: int) -> list[int]:
        v0 = (v0 + v1) & _M64
        v1 = rotl(v1, 13) ^ v0
        v0 = rotl(v0, 32)
        v2 = (v2 + v3) & _M64
        v3 = rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _M64
        v3 = rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _M64
        v1 = rotl(v1, 17) ^ v2
        return [v0, v1, rotl(v2, 32), v3]

    k0, k1 = struct.unpack("<QQ", key)
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D]
    v += [k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]
    whole = len(message) // 8 * 8
    last = (len(message) & 0xFF) << 56 | int.from_bytes(message[whole:], "little")
    words = [*struct.unpack(f"<{whole // 8}Q", message[:whole]), last]
    for word in words:
        v[3] ^= word
        v = sip_round(*sip_round(*v))
        v[0] ^= word
    v[2] ^= 0xFF
    for _ in range(4):
        v = sip_round(*v)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def _mix64(z: int) -> int:
    """The 64-bit mixing step pandas applies after hashing (SplitMix64's output function)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def test_hash_codes_follow_siphash_of_the_utf8_label():
    # the paper's test vector: key 00..0f, message 00..0e
    assert _siphash24(bytes(range(16)), bytes(range(15))) == 0xA129CA6149BE45E5
    labels = ["user7", "a", "", "ünïcødé", "a label longer than sixteen bytes", "1"]
    key = encoders.HASH_KEY.encode()
    expected = [1 + _mix64(_siphash24(key, text.encode())) % 997 for text in labels]
    assert hash_codes(pd.Series(labels), 997).tolist() == expected


# ------------------------------------------------------------------------------- storage
def test_to_dict_round_trips_through_json():
    train = pd.DataFrame(
        {
            "x": [1.0, None, 3.0, 5.0],
            "c": ["a", "b", "c", "a"],
            "h": ["p", "q", "r", None],
            "s": ["k", "l", "k", "k"],
        }
    )
    pre = TabularPreprocessor(
        ["x"], ["c", "h", "s"], onehot_max=2, min_frequency=1, hash_buckets={"h": 9}
    ).fit(train)
    again = TabularPreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert np.array_equal(again.transform(train), pre.transform(train))
    assert again.embedding_specs == pre.embedding_specs and again.n_dense == pre.n_dense
    assert again.feature_names == pre.feature_names


def test_a_dict_of_an_older_version_one_hot_encodes_every_categorical_column():
    old = {  # tasks.json of a run trained before the encoders existed
        "numeric": ["x"],
        "categorical": ["c"],
        "medians": {"x": 2.0},
        "means": {"x": 2.0},
        "stds": {"x": 0.5},
        "indicators": [],
        "categories": {"c": [f"v{i}" for i in range(12)]},
    }
    pre = TabularPreprocessor.from_dict(old)
    assert pre.embedding_specs == [] and pre.n_dense == 13
    out = pre.transform(pd.DataFrame({"x": [3.0], "c": ["v11"]}))
    assert out.tolist() == [[2.0] + [0.0] * 11 + [1.0]]


# -------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "options, message",
    [
        ({"hash_buckets": {"x": 4}}, r"data\.hash_buckets\.x: column 'x' is numeric"),
        ({"hash_buckets": {"z": 4}}, r"data\.hash_buckets\.z: column 'z' is not a feature"),
        ({"hash_buckets": {"c": 0}}, r"data\.hash_buckets\.c: expected"),
        ({"hash_buckets": {"c": 2**24}}, r"data\.hash_buckets\.c: expected .*16777215"),
        ({"embedding_dim": {"z": 4}}, r"data\.embedding_dim\.z: column 'z' is not a feature"),
        ({"embedding_dim": {"c": 0}}, r"data\.embedding_dim\.c: expected"),
        ({"max_categories": 2**24}, r"data\.max_categories: expected"),
        ({"onehot_max": -1}, r"data\.onehot_max: expected"),
        ({"min_frequency": 0}, r"data\.min_frequency: expected"),
    ],
)
def test_bad_options_name_the_field(options, message):
    with pytest.raises(ValueError, match=message):
        TabularPreprocessor(["x"], ["c"], **options)


def test_fit_state_errors():
    pre = TabularPreprocessor(["x"])
    with pytest.raises(RuntimeError, match="not fitted"):
        pre.transform(pd.DataFrame({"x": [1.0]}))
    with pytest.raises(DataError, match="feature column 'x': no values in the training rows"):
        pre.partial_fit(pd.DataFrame({"x": [None]})).finish()
    pre.fit(pd.DataFrame({"x": [1.0, 2.0]}))
    with pytest.raises(RuntimeError, match="partial_fit after finish"):
        pre.partial_fit(pd.DataFrame({"x": [1.0]}))


# ---------------------------------------------------------------------------------- speed
@pytest.mark.slow
def test_a_chunk_with_a_million_value_column_transforms_in_under_a_second():
    vocabulary = sorted(f"u{i}" for i in range(1_000_000))
    state = {
        **TabularPreprocessor(["x"]).fit(pd.DataFrame({"x": [0.0, 1.0]})).to_dict(),
        "categorical": ["user"],
        "categories": {"user": vocabulary},
        "encoders": {"user": "embedding"},
        "embedding_dims": {"user": 32},
    }
    pre = TabularPreprocessor.from_dict(state)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1_200_000, 65_536)
    chunk = pd.DataFrame({"x": rng.normal(size=ids.size), "user": [f"u{i}" for i in ids]})
    pre.transform(chunk.iloc[:10])  # builds the vocabulary's hash table once
    seconds = []
    for _ in range(3):  # the best of 3: the machine may be busy
        start = time.perf_counter()
        codes = pre.transform(chunk)[:, 1]
        seconds.append(time.perf_counter() - start)
    assert min(seconds) < 1.0
    expected = np.where(ids < 1_000_000, np.searchsorted(vocabulary, chunk["user"]) + 1, 0)
    assert np.array_equal(codes, expected)
