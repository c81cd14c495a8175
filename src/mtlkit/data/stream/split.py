"""The hash split: each row's split is a function of its key alone.

A row's key is its id (``data.id_column``, read as a canonical label by
:func:`mtlkit.cells.labels`, so ``7`` and ``"7.0"`` are the same id) or, without an id column,
its global row number (rows numbered from 0 over the files in order). With

    u = h(key, seed) / 2**64  ∈ [0, 1),

the row is in ``test`` if ``u < test_size``, in ``val`` if ``u < test_size + val_size``, else in
``train``. ``h`` is SplitMix64's finaliser (Steele, Lea & Flood 2014) of the key's 64-bit hash
(pandas' SipHash of the label, with a fixed key, for ids; the number itself for row numbers)
mixed with the seed. The split therefore does not depend on how the rows are chunked, which
file holds them, how many processes read them or in what order; rows sharing an id share a
split. The split sizes are ``test_size`` and ``val_size`` in expectation (binomial, not exact).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtlkit.cells import DataError, labels, location

SPLIT_NAMES = ("train", "val", "test")
"""Split codes: ``0`` train, ``1`` val, ``2`` test (the index in this tuple)."""
_ID_HASH_KEY = "mtlkit-split-v01"
"""pandas' ``hash_array`` key (16 characters): fixed, so a split never changes between runs."""
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of uint64 that mixes every input bit into every
    output bit (arithmetic wraps modulo 2**64)."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def _seed_word(seed: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        return _mix64(np.array([int(seed) % 2**64], dtype=np.uint64) + _GOLDEN)


def row_number_hash(rows: np.ndarray, seed: int) -> np.ndarray:
    """``h(row, seed)`` for global row numbers (uint64)."""
    return _mix64(np.asarray(rows, dtype=np.int64).astype(np.uint64) ^ _seed_word(seed))


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
    hashed = pd.util.hash_array(canonical.to_numpy(dtype=object), hash_key=_ID_HASH_KEY)
    return _mix64(hashed ^ _seed_word(seed))


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
