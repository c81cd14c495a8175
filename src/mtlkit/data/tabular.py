"""Preprocessing of tabular features, fitted on the training rows only, in one streaming pass.

A transformed row is one float32 vector ``[numeric | missing indicators | one-hot | codes]``:

- Numeric columns: a missing value is replaced by the training median and flagged in an extra
  ``<column>__missing`` indicator column (only for columns with missing training values), then
  standardized, ``(x - mean) / std``, with the mean and (population) standard deviation of the
  filled training column (a constant column keeps ``std = 1``). The median is exact up to
  100,000 training values per column, above that the median of a seeded uniform sample of
  100,000 of them (:class:`~mtlkit.data.encoders.MedianSample`).
- Categorical columns (labels canonical, :func:`mtlkit.data.cells.labels`: ``1.0`` and ``1`` are
  one category) get one of three encoders:

  * ``onehot``: at most ``onehot_max`` kept categories: one 0/1 column per category (sorted by
    label); a missing, unseen or rare value is all zeros.
  * ``embedding``: more kept categories: one *code column* holding ``1 + `` the category's index
    (sorted by label); 0 is missing, unseen or rare ("other"). The model's input layer looks the
    code up in an embedding table (:attr:`TabularPreprocessor.embedding_specs`).
  * ``hash``: a column named in ``hash_buckets`` (``{column: N}``): code
    ``1 + hash(label) mod N``, 0 when missing; no vocabulary is kept.

  Kept categories: the values seen at least ``min_frequency`` times in the training rows, at
  most the ``max_categories`` most frequent of them (ties broken by label); the rest are
  "other". When values are left out a note says so (:attr:`TabularPreprocessor.notes`, also
  logged by the ``mtlkit.data`` logger).
- Embedding width of a code column with ``n`` rows (codes ``0..n-1``): ``embedding_dim[column]``
  if given, else ``min(32, round(1.6 · n^0.56))`` (fast.ai's rule, capped at 32).

Statistics are accumulated by :meth:`~TabularPreprocessor.partial_fit` one chunk of training rows
at a time and frozen by :meth:`~TabularPreprocessor.finish`; any chunking gives the same result
as :meth:`~TabularPreprocessor.fit` on the whole frame (medians above 100,000 values included).
Cells are read by :mod:`mtlkit.data.cells`: a non-numeric, infinite or float32-overflowing value
in a numeric column is an error naming the column and the row. The fitted state is a plain dict
(:meth:`TabularPreprocessor.to_dict`), stored in a run directory and re-applied by ``evaluate``
and ``predict``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mtlkit._param_validation import Constraint, Interval, validate_params
from mtlkit.data.cells import DataError, labels, legacy_label, numbers
from mtlkit.data.encoders import (
    MAX_CODE,
    MEDIAN_SAMPLE,
    MedianSample,
    RunningMoments,
    Vocabulary,
    count_labels,
    default_embedding_dim,
    hash_codes,
    select_vocabulary,
)

logger = logging.getLogger("mtlkit.data")

ENCODERS = ("onehot", "embedding", "hash")
ONEHOT_MAX = 10
MAX_CATEGORIES = 100_000
MIN_FREQUENCY = 1
HASH_BUCKETS_RANGE = Interval(Integral, 1, MAX_CODE)
EMBEDDING_DIM_RANGE = Interval(Integral, 1, None)


@dataclass(frozen=True)
class EmbeddingSpec:
    """One code column: its source column, the rows of its embedding table and their width."""

    column: str
    num_embeddings: int
    dim: int


class TabularPreprocessor:
    """Turns a data frame's feature columns into a float matrix (see the module docstring).

    Parameters
    ----------
    numeric, categorical:
        The feature columns of each kind.
    onehot_max:
        A categorical column with at most this many kept categories is one-hot encoded, above
        that it becomes a code column (an embedding).
    max_categories:
        Kept categories per column at most (the most frequent; the others are "other"), below
        ``2**24`` so that codes stay exact in float32.
    min_frequency:
        Values seen fewer times in the training rows are "other".
    hash_buckets:
        ``{column: N}``: hash these categorical columns into ``N`` buckets (no vocabulary).
    embedding_dim:
        ``{column: d}``: width of a categorical column's embedding (such a column is always a
        code column).
    seed:
        Seed of the median's sample above 100,000 values.

    Examples
    --------
    >>> frame = pd.DataFrame({"x": [1.0, None, 3.0], "c": ["a", "b", "a"]})
    >>> pre = TabularPreprocessor(["x"], ["c"]).fit(frame)
    >>> pre.feature_names
    ['x', 'x__missing', 'c=a', 'c=b']
    >>> pre.transform(frame).tolist()
    [[-1.224744..., 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0], [1.224744..., 0.0, 1.0, 0.0]]
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "onehot_max": [Interval(Integral, 0, None)],
        "max_categories": [Interval(Integral, 1, MAX_CODE)],
        "min_frequency": [Interval(Integral, 1, None)],
        "hash_buckets": [dict],
        "embedding_dim": [dict],
        "seed": [Integral],
    }

    def __init__(
        self,
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
        *,
        onehot_max: int = ONEHOT_MAX,
        max_categories: int = MAX_CATEGORIES,
        min_frequency: int = MIN_FREQUENCY,
        hash_buckets: Mapping[str, int] | None = None,
        embedding_dim: Mapping[str, int] | None = None,
        seed: int = 0,
    ) -> None:
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.onehot_max = onehot_max
        self.max_categories = max_categories
        self.min_frequency = min_frequency
        self.hash_buckets = dict(hash_buckets or {})
        self.embedding_dim = dict(embedding_dim or {})
        self.seed = seed
        self._check_options()
        self._reset()

    def _check_options(self) -> None:
        options = {name: getattr(self, name) for name in self._parameter_constraints}
        validate_params(self._parameter_constraints, options, "data")
        per_column = (
            ("hash_buckets", HASH_BUCKETS_RANGE, self.hash_buckets),
            ("embedding_dim", EMBEDDING_DIM_RANGE, self.embedding_dim),
        )
        for field, interval, values in per_column:
            for column, value in values.items():
                where = f"data.{field}.{column}"
                if column in self.numeric:
                    raise DataError(
                        f"{where}: column {column!r} is numeric, not categorical; list it in "
                        "data.categorical (--categorical) to encode it as categories"
                    )
                if column not in self.categorical:
                    raise DataError(f"{where}: column {column!r} is not a feature column")
                if value not in interval:
                    raise DataError(f"{where}: expected {interval}, got {value!r}")

    def _reset(self) -> None:
        """Forget the fitted state and the statistics of any chunk seen."""
        self.medians: dict[str, float] = {}
        self.means: dict[str, float] = {}
        self.stds: dict[str, float] = {}
        self.indicators: list[str] = []
        self.categories: dict[str, list[str]] = {}
        self.encoders: dict[str, str] = {}
        self.embedding_dims: dict[str, int] = {}
        self.notes: list[str] = []
        """What the fit left out, one line per column (e.g. rare values sharing code 0)."""
        self.fitted = False
        self._moments = {col: RunningMoments() for col in self.numeric}
        self._samples = {col: MedianSample(MEDIAN_SAMPLE, self.seed) for col in self.numeric}
        self._missing = dict.fromkeys(self.numeric, 0)
        self._counts: dict[str, Counter[str]] = {
            col: Counter() for col in self.categorical if col not in self.hash_buckets
        }
        self._indexes: dict[str, pd.Index] = {}

    # -- fitting ------------------------------------------------------------------------------

    def partial_fit(self, frame: pd.DataFrame) -> TabularPreprocessor:
        """Add the statistics of one chunk of training rows (call :meth:`finish` after the last)."""
        if self.fitted:
            raise RuntimeError("TabularPreprocessor.partial_fit after finish(); call fit() anew")
        for col in self.numeric:
            values = _numeric(frame, col)
            present = values[~np.isnan(values)]
            self._moments[col].update(present)
            self._samples[col].update(present)
            self._missing[col] += values.size - present.size
        for col, counts in self._counts.items():
            count_labels(counts, _require(frame, col))
        for col in self.hash_buckets:
            _require(frame, col)
        return self

    def finish(self) -> TabularPreprocessor:
        """Freeze the statistics of the chunks seen into the fitted state; returns ``self``."""
        if self.fitted:
            return self
        for col in self.numeric:
            moments = self._moments[col]
            if moments.count == 0:
                raise DataError(f"feature column {col!r}: no values in the training rows")
            median = self._samples[col].median()
            self.medians[col] = median
            self.means[col], self.stds[col] = moments.filled(self._missing[col], median)
            if self._missing[col]:
                self.indicators.append(col)
        for col in self.categorical:
            if col in self.hash_buckets:
                self.encoders[col] = "hash"
                self.embedding_dims[col] = self._dim(col, self.hash_buckets[col] + 1)
                continue
            vocabulary = select_vocabulary(
                self._counts[col], self.max_categories, self.min_frequency
            )
            self.categories[col] = vocabulary.categories
            embedded = len(vocabulary.categories) > self.onehot_max or col in self.embedding_dim
            self.encoders[col] = "embedding" if embedded else "onehot"
            if embedded:
                self.embedding_dims[col] = self._dim(col, len(vocabulary.categories) + 1)
            if vocabulary.dropped:
                self._note(col, vocabulary, embedded)
        self.fitted = True
        self._moments, self._samples, self._counts = {}, {}, {}
        return self

    def fit(self, frame: pd.DataFrame) -> TabularPreprocessor:
        """``partial_fit(frame).finish()`` from a fresh state."""
        self._reset()
        return self.partial_fit(frame).finish()

    def fit_transform(self, frame: pd.DataFrame) -> np.ndarray:
        return self.fit(frame).transform(frame)

    def _dim(self, col: str, num_embeddings: int) -> int:
        return self.embedding_dim.get(col, default_embedding_dim(num_embeddings))

    def _note(self, col: str, vocabulary: Vocabulary, embedded: bool) -> None:
        kept = len(vocabulary.categories)
        often = f" seen at least {self.min_frequency} times" if self.min_frequency > 1 else ""
        if vocabulary.frequent > kept:
            which = f"kept the {kept:,} most frequent{often}"
        else:
            which = f"kept the {kept:,}{often}"
        rest = "share one embedding row" if embedded else "encode as all zeros"
        note = (
            f"{col}: {vocabulary.distinct:,} distinct training values, {which} "
            f"({vocabulary.kept_share:.0%} of rows); the rest {rest}"
        )
        self.notes.append(note)
        logger.info(note)

    # -- the fitted layout --------------------------------------------------------------------

    @property
    def onehot_columns(self) -> list[str]:
        """The one-hot encoded categorical columns, in order."""
        return [c for c in self.categorical if self.encoders.get(c, "onehot") == "onehot"]

    @property
    def code_columns(self) -> list[str]:
        """The categorical columns encoded as codes (embedding or hash), in order."""
        return [c for c in self.categorical if self.encoders.get(c, "onehot") != "onehot"]

    @property
    def n_dense(self) -> int:
        """Columns of a transformed row before the code columns."""
        self._check_fitted()
        widths = sum(len(self.categories[c]) for c in self.onehot_columns)
        return len(self.numeric) + len(self.indicators) + widths

    @property
    def embedding_specs(self) -> list[EmbeddingSpec]:
        """One :class:`EmbeddingSpec` per code column, in code-column order."""
        self._check_fitted()
        return [
            EmbeddingSpec(c, self._num_embeddings(c), self.embedding_dims[c])
            for c in self.code_columns
        ]

    def _num_embeddings(self, col: str) -> int:
        if self.encoders[col] == "hash":
            return self.hash_buckets[col] + 1
        return len(self.categories[col]) + 1

    @property
    def feature_names(self) -> list[str]:
        """Name of each column of a transformed row (``c=value`` one-hot, ``c__code`` codes)."""
        self._check_fitted()
        names = list(self.numeric) + [f"{c}__missing" for c in self.indicators]
        for col in self.onehot_columns:
            names += [f"{col}={v}" for v in self.categories[col]]
        return names + [f"{col}__code" for col in self.code_columns]

    # -- applying it --------------------------------------------------------------------------

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The float32 matrix ``(len(frame), n_dense + len(embedding_specs))``."""
        self._check_fitted()
        onehot, coded = self.onehot_columns, self.code_columns
        out = np.zeros((len(frame), self.n_dense + len(coded)), dtype=np.float32)
        numeric = {col: _numeric(frame, col) for col in self.numeric}
        j = 0
        for col, values in numeric.items():
            values = np.where(np.isnan(values), self.medians[col], values)
            out[:, j] = (values - self.means[col]) / self.stds[col]
            j += 1
        for col in self.indicators:
            out[:, j] = np.isnan(numeric[col])
            j += 1
        for col in onehot:
            codes = self.codes(frame, col)
            known = np.flatnonzero(codes > 0)
            out[known, j + codes[known] - 1] = 1.0
            j += len(self.categories[col])
        for col in coded:
            out[:, j] = self.codes(frame, col)
            j += 1
        return out

    def codes(self, frame: pd.DataFrame, col: str) -> np.ndarray:
        """Code of each row's value of categorical column ``col`` (int64): ``1 +`` its index in
        ``categories[col]`` (or its hash bucket); 0 when missing, unseen or rare."""
        values = _labels(frame, col)
        if self.encoders[col] == "hash":
            return hash_codes(values, self.hash_buckets[col])
        if col not in self._indexes:
            self._indexes[col] = pd.Index(self.categories[col], dtype=object)
        return self._indexes[col].get_indexer(values.to_numpy(object)) + 1

    def coverage(self, frame: pd.DataFrame) -> dict[str, int]:
        """Rows whose every feature is missing, and rows with a category that is not in the
        training vocabulary (unseen, or too rare to be kept; hashed columns have none)."""
        self._check_fitted()
        columns = self.numeric + self.categorical
        all_missing = frame[columns].isna().all(axis=1).to_numpy() if columns else None
        unseen = np.zeros(len(frame), dtype=bool)
        for col in self.categorical:
            if self.encoders[col] != "hash":
                unseen |= (self.codes(frame, col) == 0) & frame[col].notna().to_numpy()
        return {
            "all_features_missing": int(all_missing.sum()) if all_missing is not None else 0,
            "unseen_category": int(unseen.sum()),
        }

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError("TabularPreprocessor is not fitted: call fit() or finish() first")

    # -- storage ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fitted state as plain JSON-able data (:meth:`from_dict` rebuilds it)."""
        self._check_fitted()
        return {
            "numeric": self.numeric,
            "categorical": self.categorical,
            "medians": self.medians,
            "means": self.means,
            "stds": self.stds,
            "indicators": self.indicators,
            "categories": self.categories,
            "encoders": self.encoders,
            "embedding_dims": self.embedding_dims,
            "notes": self.notes,
            "options": {
                "onehot_max": self.onehot_max,
                "max_categories": self.max_categories,
                "min_frequency": self.min_frequency,
                "hash_buckets": self.hash_buckets,
                "embedding_dim": self.embedding_dim,
                "seed": self.seed,
            },
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> TabularPreprocessor:
        """Rebuild a fitted preprocessor; a dict of an older version (no ``encoders``) one-hot
        encodes every categorical column, as it was trained."""
        pre = cls(state["numeric"], state["categorical"], **state.get("options", {}))
        pre.medians, pre.means, pre.stds = state["medians"], state["means"], state["stds"]
        pre.indicators = state["indicators"]
        pre.categories = {
            col: [legacy_label(v) for v in values] for col, values in state["categories"].items()
        }
        pre.encoders = state.get("encoders", dict.fromkeys(pre.categorical, "onehot"))
        pre.embedding_dims = state.get("embedding_dims", {})
        pre.notes = state.get("notes", [])
        pre.fitted = True
        pre._moments, pre._samples, pre._counts = {}, {}, {}
        return pre


def _require(frame: pd.DataFrame, col: str) -> pd.Series:
    if col not in frame.columns:
        raise DataError(f"feature column {col!r} is not in the data")
    series = frame[col]
    series.attrs = frame.attrs
    return series


def _numeric(frame: pd.DataFrame, col: str) -> np.ndarray:
    return numbers(_require(frame, col), f"feature column {col!r}")


def _labels(frame: pd.DataFrame, col: str) -> pd.Series:
    return labels(_require(frame, col))


__all__ = ["ENCODERS", "EmbeddingSpec", "TabularPreprocessor"]
