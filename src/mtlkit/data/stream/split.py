"""The hash split: each row's split is a function of its key alone.

A row's key is its id (``data.id_column``, read as a canonical label by
:func:`mtlkit.cells.labels`, so ``7`` and ``"7.0"`` are the same id) or, without an id column,
its global row number (rows numbered from 0 over the files in order). With

    u = h(key, seed) / 2**64  ∈ [0, 1),

the row is in ``test`` if ``u < test_size``, in ``val`` if ``u < test_size + val_size``, else in
``train``. ``h(k, seed)`` is SplitMix64's output function (Steele, Lea & Flood 2014) of
``k + (s + 1)·φ`` (mod 2**64) with ``s = seed mod 2**63`` (so any integer seed works; seeds
that differ by a multiple of 2**63 give one split), where ``k`` is the row number, or for an id
pandas' SipHash of its label with the fixed key of hashed columns (:mod:`mtlkit.data.encoders`).
The split therefore does not depend on how the rows are chunked, which file holds them, how many
processes read them or in what order; rows sharing an id share a split. The split sizes are
``test_size`` and ``val_size`` in expectation (binomial, not exact).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtlkit.cells import DataError, labels, location
from mtlkit.data.encoders import HASH_KEY, _splitmix64

SPLIT_NAMES = ("train", "val", "test")
"""Split codes: ``0`` train, ``1`` val, ``2`` test (the index in this tuple)."""


def _seed(seed: int) -> int:
    """``seed mod 2**63``, in ``[0, 2**63)`` for any integer seed (negative ones too): the
    ``s`` of SplitMix64's ``k + (s + 1)·φ`` (see the module docstring)."""
    return int(seed) % 2**63


def row_number_hash(rows: np.ndarray, seed: int) -> np.ndarray:
    """``h(row, seed)`` for global row numbers (uint64)."""
    return _splitmix64(np.asarray(rows, dtype=np.int64).astype(np.uint64), _seed(seed))


def id_hash(ids: pd.Series, seed: int) -> np.ndarray:
    """``h(id, seed)`` for a column of ids (uint64); a missing id is an error naming the row
    (``ids.attrs["source"]`` and its index say where, as :func:`mtlkit.cells.location` reads)."""
    canonical = labels(ids)
    missing = canonical.isna().to_numpy()
    if missing.any():
        first = ids.index[int(np.flatnonzero(missing)[0])]
        raise DataError(
            f"data.id_column {ids.name!r}, {location(ids, first)}: missing id "
            f"({int(missing.sum())} such row(s)); the hash split needs every row's id"
        )
    hashed = pd.util.hash_array(canonical.to_numpy(dtype=object), hash_key=HASH_KEY)
    return _splitmix64(hashed, _seed(seed))


def assign_splits(hashes: np.ndarray, val_size: float, test_size: float) -> np.ndarray:
    """Split code (0 train, 1 val, 2 test) of each row from its hash ``h``:
    ``u = h / 2**64``; test if ``u < test_size``, val if ``u < test_size + val_size``."""
    u = (np.asarray(hashes, dtype=np.uint64) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    codes = np.zeros(len(u), dtype=np.int8)
    codes[u < test_size + val_size] = 1
    codes[u < test_size] = 2
    return codes


def hash_split(
    val_size: float,
    test_size: float,
    seed: int,
    rows: np.ndarray | None = None,
    ids: pd.Series | None = None,
) -> np.ndarray:
    """Split codes of rows keyed by ``ids`` when given, else by their global ``rows`` numbers."""
    if ids is not None:
        return assign_splits(id_hash(ids, seed), val_size, test_size)
    if rows is None:
        raise ValueError("hash_split: give the rows' global numbers or their ids")
    return assign_splits(row_number_hash(rows, seed), val_size, test_size)
