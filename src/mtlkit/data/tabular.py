"""Preprocessing of tabular features, fitted on the training rows only.

- Numeric columns: missing values are replaced by the training median and flagged in an extra
  ``<column>__missing`` indicator column (only for columns with missing training values), then
  standardized with the training mean and standard deviation.
- Categorical columns: one-hot encoded over the categories seen in training; a missing or unseen
  category encodes as all zeros.

The fitted state is a plain dict (:meth:`TabularPreprocessor.to_dict`), stored in a run directory
and re-applied by ``evaluate`` and ``predict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


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
                raise ValueError(f"feature column {col!r}: no values in the training rows")
            self.medians[col] = float(np.median(finite))
            filled = np.where(np.isnan(values), self.medians[col], values)
            self.means[col] = float(filled.mean())
            std = float(filled.std())
            self.stds[col] = std if std > 0 else 1.0
            if np.isnan(values).any():
                self.indicators.append(col)
        for col in self.categorical:
            seen = frame[col].dropna().astype(str).unique().tolist()
            self.categories[col] = sorted(seen)
        return self

    @property
    def feature_names(self) -> list[str]:
        names = list(self.numeric) + [f"{c}__missing" for c in self.indicators]
        for col in self.categorical:
            names += [f"{col}={v}" for v in self.categories[col]]
        return names

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        columns = []
        for col in self.numeric:
            values = _numeric(frame, col)
            values = np.where(np.isnan(values), self.medians[col], values)
            columns.append((values - self.means[col]) / self.stds[col])
        for col in self.indicators:
            columns.append(np.isnan(_numeric(frame, col)).astype(float))
        for col in self.categorical:
            values = frame[col].astype(object).where(frame[col].notna(), None)
            for category in self.categories[col]:
                columns.append(
                    np.array([v is not None and str(v) == category for v in values], float)
                )
        if not columns:
            return np.zeros((len(frame), 0), dtype=np.float32)
        return np.stack(columns, axis=1).astype(np.float32)

    def fit_transform(self, frame: pd.DataFrame) -> np.ndarray:
        return self.fit(frame).transform(frame)

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


def _numeric(frame: pd.DataFrame, col: str) -> np.ndarray:
    if col not in frame.columns:
        raise ValueError(f"feature column {col!r} is not in the data")
    values = pd.to_numeric(frame[col], errors="coerce")
    bad = values.isna() & frame[col].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"feature column {col!r}, row {row}: non-numeric value {frame[col].iloc[row]!r}"
        )
    return values.to_numpy(dtype=float)
