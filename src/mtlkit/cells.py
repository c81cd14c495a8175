"""How the cells of a table are read: missing, numbers and category labels.

No torch and no other mtlkit module: the data layer and the task kinds (which encode target
columns) both use it.

One set of rules for training, ``evaluate`` and ``predict``, for CSV and Parquet alike:

- **Missing**: an empty (or blank) cell, a Parquet null, or a token the user lists in
  ``data.na_values`` (``--na-values``). pandas' default NA strings (``NA``, ``None``, ``null``,
  ``NaN``, ``n/a``...) are ordinary values otherwise.
- **Numbers**: every present cell must parse as a float whose magnitude fits in float32
  (``|x| <= 3.4028235e38``); a non-numeric token, ``inf``, ``-inf`` or an overflowing value is a
  :class:`DataError` that names the column and the row.
- **Category labels**: the cell's text, stripped; a number (or the text of a number) is written
  in one canonical form (``1``, ``1.0`` and ``1e0`` are all ``"1"``; ``0.5`` is ``"0.5"``), so a
  code read as a float in one file and as an integer in another is the same category: a whole
  number that int64 holds is its digits, any other number Python's ``repr`` (``"1e+20"``).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

FLOAT32_MAX = float(np.finfo(np.float32).max)
PANDAS_NA_STRINGS = frozenset(
    ["#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"]
    + ["<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
)
"""pandas' default NA strings: ordinary values here unless listed in ``data.na_values``."""


class DataError(ValueError):
    """The data itself is unusable; the message names the file, column, row or task."""


def location(frame_or_series: pd.DataFrame | pd.Series, label: object) -> str:
    """Where a row is: ``line N of 'file.csv'``, ``row N of 'file.parquet'`` or ``index N``.

    ``label`` is the row's index label; :func:`mtlkit.data.table.read_table` numbers rows from 0
    and records the file in ``attrs["source"]`` (CSV lines count the header as line 1).
    """
    source = frame_or_series.attrs.get("source")
    if source is None or not isinstance(label, (int, np.integer)):
        return f"index {label}"
    if str(source).lower().endswith((".parquet", ".pq")):
        return f"row {int(label) + 1} of {str(source)!r}"
    return f"line {int(label) + 2} of {str(source)!r}"


def na_hint(token: object) -> str:
    """A hint for a token that pandas would have read as missing."""
    text = str(token).strip()
    if text in PANDAS_NA_STRINGS:
        return f" (pass --na-values {text} if it marks a missing value)"
    return ""


def numbers(series: pd.Series, what: str) -> np.ndarray:
    """The float64 values of a numeric column, NaN where a cell is missing.

    ``what`` names the column in errors, e.g. ``"feature column 'x'"``. A present cell that is
    not a number, is infinite or overflows float32 raises :class:`DataError`.
    """
    if pd.api.types.is_bool_dtype(series.dtype):
        values = series.astype(float).to_numpy(dtype=float, na_value=np.nan)
    elif pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=float, na_value=np.nan)
    else:
        converted = pd.to_numeric(series, errors="coerce")
        values = converted.to_numpy(dtype=float, na_value=np.nan)
        bad = np.isnan(values) & series.notna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            token = series.iloc[i]
            raise DataError(
                f"{what}, {location(series, series.index[i])}: non-numeric value "
                f"{token!r}{na_hint(token)}"
            )
    too_large = ~(np.abs(values) <= FLOAT32_MAX) & ~np.isnan(values)
    if too_large.any():
        i = int(np.flatnonzero(too_large)[0])
        kind = "non-finite value" if np.isinf(values[i]) else "value overflowing float32"
        raise DataError(f"{what}, {location(series, series.index[i])}: {kind} {float(values[i])!r}")
    return values


def numeric_share(series: pd.Series) -> float:
    """The fraction of present cells that parse as numbers (1.0 for a numeric dtype)."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return 0.0
    if pd.api.types.is_numeric_dtype(series.dtype):
        return 1.0
    counts = series.value_counts(dropna=True)
    if counts.sum() == 0:
        return 0.0
    numeric = pd.to_numeric(counts.index.to_series(), errors="coerce").notna().to_numpy()
    return float(counts.to_numpy()[numeric].sum() / counts.sum())


def labels(series: pd.Series) -> pd.Series:
    """Canonical category labels (str) of a column, ``None`` where a cell is missing."""
    present = series.notna().to_numpy()
    out = pd.Series([None] * len(series), index=series.index, dtype=object)
    if not present.any():
        return out
    codes, distinct = pd.factorize(series[present])
    out[present] = _canonical(pd.Index(distinct, dtype=object))[codes]
    return out


def _canonical(values: pd.Index) -> np.ndarray:
    """The canonical label of each distinct value (see the module docstring)."""
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return np.array([str(bool(v)) for v in values], dtype=object)
    if values.inferred_type == "integer":  # the common id column: its digits are its label
        try:
            return np.asarray(values, dtype=np.int64).astype(str).astype(object)
        except OverflowError:
            pass
    text = np.array([str(v).strip() for v in values], dtype=object)
    # digit-only text is read exactly: through float64, distinct ids beyond 2**53 (e.g. 19-digit
    # ids stored as strings) would share one label
    integer_text = pd.Series(text, dtype=object).str.fullmatch(r"[-+]?[0-9]+").to_numpy(dtype=bool)
    exact = {i: int(text[i]) for i in np.flatnonzero(integer_text)}
    number = np.full(len(values), np.nan)
    # only text starting like a finite number can parse as one (to_numeric is slow on words)
    maybe = (
        pd.Series(text, dtype=object).str.match(r"[-+]?\.?\d").to_numpy(dtype=bool)
        if values.inferred_type == "string"
        else np.ones(len(values), dtype=bool)
    )
    number[maybe] = pd.to_numeric(values[maybe].to_series(), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    finite = np.isfinite(number)
    whole = finite & (np.trunc(number) == number) & (np.abs(number) < 2**63)  # int64 holds it
    text[whole] = number[whole].astype(np.int64).astype(str)
    # a fraction (or a whole number beyond int64) as Python writes it: numpy 2's repr of a
    # float64 reads 'np.float64(0.5)'
    text[finite & ~whole] = [repr(float(v)) for v in number[finite & ~whole]]
    for i, value in exact.items():
        if abs(value) < 2**63:
            text[i] = str(value)
    return text


def natural_key(label: str) -> tuple:
    """Sort key putting numeric labels first, in numeric order (``"2"`` before ``"10"``)."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


_NUMPY_REPR = re.compile(r"np\.float(?:16|32|64)\((.*)\)")
_FLOAT_REPR = re.compile(r"-?\d+\.0|-?\d(?:\.\d+)?e\+\d+")


def legacy_label(label: str) -> str:
    """A stored label as :func:`labels` writes it today: runs saved by earlier versions may hold
    numpy 2's repr of a fractional number (``'np.float64(0.5)'`` for ``'0.5'``) or the repr of a
    whole number from 2**53 up to int64's range (``'9007199254740992.0'``, now its digits)."""
    if not isinstance(label, str):
        return label
    match = _NUMPY_REPR.fullmatch(label)
    label = match.group(1) if match else label
    if _FLOAT_REPR.fullmatch(label) and 2**53 <= abs(float(label)) < 2**63:
        return str(int(float(label)))
    return label


__all__ = [
    "FLOAT32_MAX",
    "DataError",
    "labels",
    "legacy_label",
    "location",
    "na_hint",
    "natural_key",
    "numbers",
    "numeric_share",
]
