"""Tables larger than memory: read in record batches ("units"), split by hash, fitted in one pass.

- :mod:`~mtlkit.data.stream.source`: a path (file, directory or glob of Parquet or CSV files) →
  its files, checked columns, and its units read one at a time.
- :mod:`~mtlkit.data.stream.split`: the hash split (a row's split depends on its id or row
  number only).
- :mod:`~mtlkit.data.stream.table`: :class:`StreamTable`, fitted in one pass over the rows
  (preprocessor, task classes, target scaling, rows of each split in each unit); reads any unit's
  rows of a split, transformed.
- :mod:`~mtlkit.data.stream.loader`: :class:`StreamLoader`, batches of a split through a bounded
  shuffle buffer, sharded across ranks, read by workers, resumable mid-epoch.

Names load lazily (PEP 562), so ``mtlkit.data.table`` can use the hash split without a cycle.
"""

from __future__ import annotations

from mtlkit._lazy import lazy_exports

_EXPORTS = {
    "StreamSource": "source",
    "Unit": "source",
    "resolve_files": "source",
    "hash_split": "split",
    "SPLIT_NAMES": "split",
    "StreamTable": "table",
    "scan_table": "table",
    "StreamLoader": "loader",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
