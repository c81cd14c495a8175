"""Write the #16 benchmark table to Parquet, chunk by chunk: N rows of 40 numeric columns, a
10-value, a 1,000-value and a 1,000,000-value categorical column and two binary tasks.

Columns: ``x0..x39`` (float32, N(0, 1)); ``cat10`` (uniform over 10 values), ``cat1k`` and
``cat1m`` (int64 ids of 1,000 and 1,000,000 values, Zipf-like frequencies ``P(k) ∝ k^(-1.05)``
over frequency ranks, ids a fixed permutation of the ranks); ``click`` (int8) with
``P(click) = σ(aᵀx₀..₇ + e10[cat10] + e1k[cat1k] + e1m(cat1m) − 1)`` and ``conversion`` (int8,
null where ``click = 0``) with a logit sharing half of the click's score. ``e`` are fixed random
per-value effects (``e1m`` from a hash of the id, so no table of a million effects is needed).

Chunk ``i`` (``--chunk-rows`` rows, one Parquet row group) uses the random stream ``[seed, i]``:
a file is fixed by ``--rows``, ``--seed`` and ``--chunk-rows``; memory is bounded by the chunk.

    .venv/bin/python benchmarks/stream/write_table.py --rows 1000000 --out stream-1m.parquet
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from mtlkit.data.builtin.recsys_synthetic import zipf_probabilities

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recsys"))
from write_parquet import write_chunks  # noqa: E402

N_NUMERIC = 40
CARDINALITIES = {"cat10": 10, "cat1k": 1000, "cat1m": 1_000_000}
ZIPF = 1.05


class BenchTable:
    """The fixed parts of the generator: id permutations, per-value effects, weights."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng([seed, 2**32 - 1])
        self.seed = seed
        self.cdf = {
            name: np.cumsum(zipf_probabilities(n, ZIPF))
            for name, n in CARDINALITIES.items()
            if name != "cat10"
        }
        self.ids = {name: rng.permutation(n) for name, n in CARDINALITIES.items()}
        self.effect10 = rng.normal(0.0, 0.5, 10)
        self.effect1k = rng.normal(0.0, 0.5, 1000)
        self.weights = rng.normal(0.0, 1.0, (8, 2)) / np.sqrt(8)

    def chunk(self, n: int, index: int) -> pa.Table:
        """Chunk ``index`` of ``n`` rows as a pyarrow table."""
        rng = np.random.default_rng([self.seed, index])
        x = rng.standard_normal((n, N_NUMERIC), dtype=np.float32)
        ranks = {"cat10": rng.integers(0, 10, n)}
        for name, cdf in self.cdf.items():
            ranks[name] = np.minimum(np.searchsorted(cdf, rng.random(n)), len(cdf) - 1)
        hashed = (ranks["cat1m"].astype(np.uint64) * np.uint64(2654435761)) % np.uint64(1000)
        effect1m = hashed.astype(np.float64) / 1000.0 - 0.5
        base = self.effect10[ranks["cat10"]] + self.effect1k[ranks["cat1k"]] + effect1m
        score = x[:, :8].astype(np.float64) @ self.weights
        click = rng.random(n) < 1.0 / (1.0 + np.exp(-(score[:, 0] + base - 1.0)))
        conversion_logit = 0.5 * score[:, 0] + score[:, 1] + 0.5 * base - 1.0
        conversion = rng.random(n) < 1.0 / (1.0 + np.exp(-conversion_logit))
        columns = {f"x{j}": pa.array(x[:, j]) for j in range(N_NUMERIC)}
        for name, rank in ranks.items():
            columns[name] = pa.array(self.ids[name][rank].astype(np.int64))
        columns["click"] = pa.array(click.astype(np.int8))
        columns["conversion"] = pa.array(conversion.astype(np.int8), mask=~click)
        return pa.table(columns)


def write(path: str, rows: int, seed: int = 0, chunk_rows: int = 100_000) -> int:
    """Write ``rows`` rows to ``path`` (one row group per chunk); return the rows written."""
    return write_chunks(path, rows, chunk_rows, BenchTable(seed).chunk, row_group_size=chunk_rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True, help="rows to write")
    parser.add_argument("--out", required=True, help="the Parquet file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-rows", type=int, default=100_000, help="rows per row group")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.chunk_rows < 1:
        parser.error("--rows and --chunk-rows must be >= 1")
    written = write(args.out, args.rows, args.seed, args.chunk_rows)
    print(f"wrote {written} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
