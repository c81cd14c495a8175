"""Preprocessing of tabular features, fitted on the training rows only.

- Numeric columns: missing values are replaced by the training median and flagged in an extra
  ``<column>__missing`` indicator column (only for columns with missing training values), then
  standardized with the training mean and standard deviation.
- Categorical columns: one-hot encoded over the categories seen in training; a missing or unseen
  category encodes as all zeros. Category labels are canonical (:func:`mtlkit.data.cells.labels`:
  ``1.0`` and ``1`` are the same category).

Cells are read by :mod:`mtlkit.data.cells`: a non-numeric, infinite or float32-overflowing value
in a numeric column is an error naming the column and the row. The fitted state is a plain dict
(:meth:`TabularPreprocessor.to_dict`), stored in a run directory and re-applied by ``evaluate``
and ``predict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mtlkit.data.cells import DataError, labels, numbers


class TabularPreprocessor:
    """Turns a data frame's feature columns into a float matrix (see the module docstring)."""

    def __init__(self, numeric: Sequence[str] = (), categorical: Sequence[str] = ()) -> None:
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.medians: dict[str, float] = {}
        self.means: dict[str, float] = {}
        self.stds: dict[str, float] = {}
        self.indicators: list[str] = []
        self.categories: dict[str, list[str]] = {}

    def fit(self, frame: pd.DataFrame) -> TabularPreprocessor:
        for col in self.numeric:
            values = _numeric(frame, col)
            finite = values[~np.isnan(values)]
            if finite.size == 0:
                raise DataError(f"feature column {col!r}: no values in the training rows")
            self.medians[col] = float(np.median(finite))
            filled = np.where(np.isnan(values), self.medians[col], values)
            self.means[col] = float(filled.mean())
            std = float(filled.std())
            self.stds[col] = std if std > 0 else 1.0
            if np.isnan(values).any():
                self.indicators.append(col)
        for col in self.categorical:
            self.categories[col] = sorted(_labels(frame, col).dropna().unique().tolist())
        return self

    @property
    def feature_names(self) -> list[str]:
        names = list(self.numeric) + [f"{c}__missing" for c in self.indicators]
        for col in self.categorical:
            names += [f"{col}={v}" for v in self.categories[col]]
        return names

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        columns = []
        numeric = {col: _numeric(frame, col) for col in self.numeric}
        for col, values in numeric.items():
            values = np.where(np.isnan(values), self.medians[col], values)
            columns.append((values - self.means[col]) / self.stds[col])
        for col in self.indicators:
            columns.append(np.isnan(numeric[col]).astype(float))
        blocks = [np.stack(columns, axis=1).astype(np.float32)] if columns else []
        for col in self.categorical:
            codes = self._codes(frame, col)
            one_hot = np.zeros((len(frame), len(self.categories[col])), dtype=np.float32)
            known = codes >= 0
            one_hot[np.flatnonzero(known), codes[known]] = 1.0
            blocks.append(one_hot)
        if not blocks:
            return np.zeros((len(frame), 0), dtype=np.float32)
        return np.concatenate(blocks, axis=1)

    def fit_transform(self, frame: pd.DataFrame) -> np.ndarray:
        return self.fit(frame).transform(frame)

    def coverage(self, frame: pd.DataFrame) -> dict[str, int]:
        """Rows whose every feature is missing, and rows with a category unseen in training."""
        columns = self.numeric + self.categorical
        all_missing = frame[columns].isna().all(axis=1).to_numpy() if columns else None
        unseen = np.zeros(len(frame), dtype=bool)
        for col in self.categorical:
            unseen |= (self._codes(frame, col) == -1) & frame[col].notna().to_numpy()
        return {
            "all_features_missing": int(all_missing.sum()) if all_missing is not None else 0,
            "unseen_category": int(unseen.sum()),
        }

    def _codes(self, frame: pd.DataFrame, col: str) -> np.ndarray:
        """Index of each row's category in ``categories[col]``; -1 when missing or unseen."""
        values = _labels(frame, col)
        return pd.Index(self.categories[col], dtype=object).get_indexer(values.to_numpy(object))

    def to_dict(self) -> dict:
        return {
            "numeric": self.numeric,
            "categorical": self.categorical,
            "medians": self.medians,
            "means": self.means,
            "stds": self.stds,
            "indicators": self.indicators,
            "categories": self.categories,
        }

    @classmethod
    def from_dict(cls, state: dict) -> TabularPreprocessor:
        pre = cls(state["numeric"], state["categorical"])
        pre.medians, pre.means, pre.stds = state["medians"], state["means"], state["stds"]
        pre.indicators, pre.categories = state["indicators"], state["categories"]
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
