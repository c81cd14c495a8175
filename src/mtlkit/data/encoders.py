"""Streaming statistics and category encoders used by :class:`~mtlkit.data.TabularPreprocessor`.

Every statistic here is accumulated one chunk of training rows at a time and gives the same
result whatever the chunking (the property tests in ``tests/data/test_encoders.py`` check it):

- :class:`RunningMoments`: count, mean and sum of squared deviations of a numeric column, merged
  chunk by chunk with Chan et al.'s pairwise update (float64, values shifted by the first one).
- :class:`MedianSample`: every value up to ``capacity`` (100,000) values, so the median is exact;
  above, a seeded uniform sample of ``capacity`` values (bottom-k by a hash of each value's
  position, so the sample does not depend on the chunking either).
- :func:`select_vocabulary`: the kept categories of a column from its training label counts.
- :func:`hash_codes`: codes ``1..N`` from a stable hash of the canonical label.
- :func:`default_embedding_dim`: fast.ai's rule ``min(32, round(1.6 * n ** 0.56))``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mtlkit.cells import labels

MEDIAN_SAMPLE = 100_000
"""Training values per numeric column kept for the median (exact up to this many)."""
MAX_CODE = 2**24 - 1
"""The largest code a code column may hold: float32 holds every integer up to ``2**24``."""
HASH_KEY = "mtlkit.hash.v001"
"""The 16-character key of :func:`pandas.util.hash_array` for hashed columns (fixed: stable)."""
MAX_EMBEDDING_DIM = 32


@dataclass
class RunningMoments:
    """Count, mean and ``M2 = Σ (x - mean)²`` of a stream of values (Chan et al., 1979).

    Merging a chunk of ``n_b`` values with mean ``m_b`` and ``M2_b`` into ``(n_a, m_a, M2_a)``:
    ``δ = m_b - m_a``, ``n = n_a + n_b``, ``m = m_a + δ n_b / n``,
    ``M2 = M2_a + M2_b + δ² n_a n_b / n``. Values are shifted by the first value seen, so a
    column far from zero with a small spread keeps its precision.
    """

    count: int = 0
    shift: float = 0.0
    mean: float = 0.0
    """Mean of ``x - shift``."""
    m2: float = 0.0
    low: float = np.inf
    high: float = -np.inf

    def update(self, values: np.ndarray) -> None:
        """Add a chunk of (present, finite) float64 values."""
        if values.size == 0:
            return
        if self.count == 0:
            self.shift = float(values[0])
        shifted = values - self.shift
        n_b = shifted.size
        mean_b = float(shifted.mean())
        m2_b = float(np.square(shifted - mean_b).sum())
        self.merge(n_b, mean_b, m2_b)
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))

    def merge(self, n_b: int, mean_b: float, m2_b: float) -> None:
        """Merge a group of ``n_b`` shifted values with mean ``mean_b`` and ``M2`` ``m2_b``."""
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.count * n_b / n
        self.count = n

    def filled(self, n_missing: int, fill: float) -> tuple[float, float]:
        """Mean and (population) standard deviation once ``n_missing`` values equal to ``fill``
        are added; a constant column has standard deviation 1 (so it is only centred)."""
        moments = RunningMoments(self.count, self.shift, self.mean, self.m2, self.low, self.high)
        if n_missing:
            moments.merge(n_missing, fill - self.shift, 0.0)
        std = float(np.sqrt(max(moments.m2, 0.0) / moments.count))
        if self.low == self.high or std == 0.0:
            std = 1.0
        return self.shift + moments.mean, std


class MedianSample:
    """The values of a numeric column for its median: all of them up to ``capacity``, then a
    seeded uniform sample of ``capacity`` values.

    Value number ``i`` of the column (counting present values in stream order) gets the key
    ``splitmix64(i + (seed + 1) · φ)``; the sample keeps the ``capacity`` smallest keys
    (bottom-k sampling, a reservoir sample). splitmix64 is a bijection, so keys never tie and
    the sample is the same whatever the chunking.
    """

    def __init__(self, capacity: int = MEDIAN_SAMPLE, seed: int = 0) -> None:
        self.capacity = capacity
        self.seed = seed
        self.seen = 0
        self.values = np.empty(0, dtype=np.float64)
        self.keys = np.empty(0, dtype=np.uint64)
        self._threshold: np.uint64 | None = None

    def update(self, values: np.ndarray) -> None:
        """Add a chunk of (present) float64 values."""
        if values.size == 0:
            return
        positions = np.arange(self.seen, self.seen + values.size, dtype=np.uint64)
        self.seen += values.size
        keys = _splitmix64(positions, self.seed)
        if self._threshold is not None:  # a key above the capacity-th smallest never enters
            enters = keys < self._threshold
            values, keys = values[enters], keys[enters]
        self.values = np.concatenate([self.values, values])
        self.keys = np.concatenate([self.keys, keys])
        if self.values.size > 2 * self.capacity:
            self._prune()

    def _prune(self) -> None:
        if self.values.size > self.capacity:
            keep = np.argpartition(self.keys, self.capacity - 1)[: self.capacity]
            self.values, self.keys = self.values[keep], self.keys[keep]
            self._threshold = self.keys.max()

    def sample(self) -> np.ndarray:
        """The kept values (all of them up to ``capacity``), in no particular order."""
        self._prune()
        return self.values

    def median(self) -> float:
        return float(np.median(self.sample()))


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(positions: np.ndarray, seed: int) -> np.ndarray:
    """Steele et al.'s SplitMix64 output function of ``positions + (seed + 1) · φ`` (mod 2⁶⁴)."""
    with np.errstate(over="ignore"):
        z = positions + np.uint64((seed + 1) % 2**64) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def count_labels(counts: Counter[str], values: pd.Series) -> None:
    """Add the canonical labels (:func:`mtlkit.cells.labels`) of one chunk's ``values`` to
    ``counts``; missing cells are not counted."""
    raw = values.value_counts(dropna=True)  # distinct cells first: canonical labels of fewer
    for label, n in zip(labels(raw.index.to_series()).tolist(), raw.tolist()):
        counts[label] += n


@dataclass(frozen=True)
class Vocabulary:
    """The kept categories of a column (sorted by label) and what was left out."""

    categories: list[str]
    distinct: int
    """Distinct training values."""
    frequent: int
    """Distinct training values seen at least ``min_frequency`` times."""
    kept_share: float
    """Share of the training rows with a value whose value was kept."""

    @property
    def dropped(self) -> int:
        return self.distinct - len(self.categories)


def select_vocabulary(counts: Counter[str], max_categories: int, min_frequency: int) -> Vocabulary:
    """The values seen at least ``min_frequency`` times, at most the ``max_categories`` most
    frequent of them (ties broken by label), sorted by label."""
    frequent = {label: n for label, n in counts.items() if n >= min_frequency}
    if len(frequent) > max_categories:
        table = pd.DataFrame({"label": list(frequent), "count": list(frequent.values())})
        table = table.sort_values(["count", "label"], ascending=[False, True], kind="stable")
        kept = table["label"].iloc[:max_categories].tolist()
    else:
        kept = list(frequent)
    total = sum(counts.values())
    share = sum(counts[label] for label in kept) / total if total else 1.0
    return Vocabulary(sorted(kept), len(counts), len(frequent), share)


def hash_codes(labels: pd.Series, buckets: int) -> np.ndarray:
    """``1 + hash(label) mod buckets`` for each present label, 0 where it is missing.

    The hash is :func:`pandas.util.hash_array` with the fixed key :data:`HASH_KEY` (SipHash-2-4
    of the UTF-8 label, then SplitMix64's mixing step), so a label gets the same code in every
    run and process.
    """
    present = labels.notna().to_numpy()
    codes = np.zeros(len(labels), dtype=np.int64)
    if present.any():
        text = labels.to_numpy(dtype=object)[present]
        hashed = pd.util.hash_array(text, hash_key=HASH_KEY, categorize=True)
        codes[present] = 1 + (hashed % np.uint64(buckets)).astype(np.int64)
    return codes


def default_embedding_dim(num_embeddings: int) -> int:
    """fast.ai's rule of thumb ``round(1.6 · n^0.56)``, at most 32 (n: rows of the table)."""
    return int(min(MAX_EMBEDDING_DIM, round(1.6 * num_embeddings**0.56)))


__all__ = [
    "HASH_KEY",
    "MAX_CODE",
    "MEDIAN_SAMPLE",
    "MedianSample",
    "RunningMoments",
    "Vocabulary",
    "count_labels",
    "default_embedding_dim",
    "hash_codes",
    "select_vocabulary",
]
