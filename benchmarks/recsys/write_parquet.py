"""Write N rows of the ``recsys_synthetic`` generator to Parquet, chunk by chunk.

Memory is bounded by ``--chunk-rows`` (and the per-id latent tables), not by ``--rows``: each
chunk is generated, written with one ``pyarrow.parquet.ParquetWriter`` and dropped. Columns:
``user_id``, ``item_id``, ``context_id`` (int64 raw ids), ``x0..x{m-1}`` (float32), ``click``
(int8) and ``conversion`` (int8, null where ``click = 0``). Chunk ``i`` uses the random stream
``[seed, 1, i]``, so a file is fixed by ``--seed`` and ``--chunk-rows``; its first chunk equals
``load_dataset("recsys_synthetic", n_rows=...)``'s rows when ``--chunk-rows ≥ n_rows``.

    .venv/bin/python benchmarks/recsys/write_parquet.py --rows 1000000 --out clicks.parquet
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mtlkit.data.builtin.recsys_synthetic import RecsysGenerator


def chunk_table(rows: dict[str, np.ndarray]) -> pa.Table:
    """The Parquet columns of one generated chunk."""
    columns = {f"{c}_id": pa.array(rows[c], pa.int64()) for c in ("user", "item", "context")}
    for j in range(rows["x"].shape[1]):
        columns[f"x{j}"] = pa.array(rows["x"][:, j].astype(np.float32))
    columns["click"] = pa.array(rows["click"].astype(np.int8))
    unlabelled = rows["click"] == 0
    conversion = np.where(unlabelled, 0, rows["conversion"]).astype(np.int8)
    columns["conversion"] = pa.array(conversion, mask=unlabelled)
    return pa.table(columns)


def write_chunks(
    path: str,
    rows: int,
    chunk_rows: int,
    make_chunk: Callable[[int, int], pa.Table],
    row_group_size: int | None = None,
) -> int:
    """Write ``rows`` rows to ``path``, ``make_chunk(n, index)`` giving chunk ``index`` of ``n``
    rows, one ``ParquetWriter`` for all; return the rows written."""
    written, index, writer = 0, 0, None
    try:
        while written < rows:
            n = min(chunk_rows, rows - written)
            table = make_chunk(n, index)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=row_group_size)
            written, index = written + n, index + 1
    finally:
        if writer is not None:
            writer.close()
    return written


def write(path: str, rows: int, generator: RecsysGenerator, chunk_rows: int) -> int:
    """Write ``rows`` rows to ``path`` in chunks of ``chunk_rows``; return the rows written."""
    return write_chunks(path, rows, chunk_rows, lambda n, i: chunk_table(generator.chunk(n, i)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True, help="rows to write")
    parser.add_argument("--out", required=True, help="the Parquet file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-rows", type=int, default=100_000, help="rows per chunk")
    parser.add_argument("--n-users", type=int, default=100_000)
    parser.add_argument("--n-items", type=int, default=1_000_000)
    parser.add_argument("--n-contexts", type=int, default=1000)
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of the ids")
    parser.add_argument("--relatedness", type=float, default=0.5, help="ρ in [0, 1]")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.chunk_rows < 1:
        parser.error("--rows and --chunk-rows must be >= 1")
    try:
        generator = RecsysGenerator(
            n_users=args.n_users,
            n_items=args.n_items,
            n_contexts=args.n_contexts,
            zipf=args.zipf,
            relatedness=args.relatedness,
            seed=args.seed,
        )
    except ValueError as error:
        parser.error(str(error))
    written = write(args.out, args.rows, generator, args.chunk_rows)
    print(f"wrote {written} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
