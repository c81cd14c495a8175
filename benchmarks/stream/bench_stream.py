"""Issue #16 benchmark: peak memory and rows/s of one epoch of MMoE (batch 1024) on tables of
1M and 10M rows (40 numeric, a 10-, a 1,000- and a 1,000,000-value categorical column, two
binary tasks, ``write_table.py``), streamed (``--stream``) and in memory (up to
``--in-memory-max-rows``), one process and two under torchrun.

Every configuration is ``mtlkit train`` (``data.split: hash``, so both paths train on the same
rows) in a fresh subprocess, itself started by a fresh measuring process of this script, which
reports:

- ``peak RSS, largest process``: ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of the measuring
  process (the largest resident set of any process it waited for: the one training process, or
  the largest torchrun rank);
- ``peak RSS, all processes``: the largest sum of the resident sets of the whole process tree,
  polled from ``/proc`` every 0.1 s (the two ranks plus torchrun's agent);
- ``rows/s``: training rows / the epoch's ``seconds`` in ``metrics.jsonl`` (the training loop
  only: not the fitting pass, validation or test);
- ``wall``: the whole command (reading, fitting, the epoch, validation and test).

Tables are written once under ``--data-dir`` (row groups of 65,536 rows: one unit each) and
reused. Threads: ``--threads`` per process (default 1: two processes use two cores, one process
one core; more threads than free cores makes torch's thread pool spin and slows a step down
many times over).

    .venv/bin/python benchmarks/stream/bench_stream.py --rows 1000000 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TASKS = ("click:binary:click", "conversion:binary:conversion")
CATEGORICAL = "cat10,cat1k,cat1m"
CHUNK_ROWS = 65_536
GIB = 2**30


# ---------------------------------------------------------------------------------- measuring
def _tree(root: int) -> list[int]:
    """``root`` and its descendants (from ``/proc/*/stat`` parent ids)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += parents.get(pid, [])
    return pids


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def measure(command: Sequence[str]) -> dict[str, float]:
    """Run ``command``; its wall time, exit code and peak RSS (largest process, whole tree)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=sys.stderr)  # stdout: this process's JSON only
    peak_sum = 0
    while process.poll() is None:
        peak_sum = max(peak_sum, sum(_rss(pid) for pid in _tree(process.pid)))
        time.sleep(0.1)
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    return {
        "returncode": process.returncode,
        "wall": time.perf_counter() - start,
        "rss_largest": largest,
        "rss_sum": max(peak_sum, largest),
    }


# ---------------------------------------------------------------------------------- configs
def table_path(data_dir: Path, rows: int) -> Path:
    """The benchmark table of ``rows`` rows, written on first use."""
    import pyarrow.parquet as pq

    sys.path.insert(0, str(HERE))
    from write_table import write

    path = data_dir / f"bench-{rows}.parquet"
    if path.exists() and pq.ParquetFile(path).metadata.num_rows == rows:
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"writing {rows:,} rows to {path} ...", flush=True)
    partial = path.with_suffix(".partial")
    write(str(partial), rows, seed=0, chunk_rows=CHUNK_ROWS)
    partial.replace(path)
    return path


def train_rows(rows: int, seed: int = 0) -> int:
    """Rows in the training split of the hash split (row numbers, ``val = test = 0.15``)."""
    from mtlkit.data.stream.split import hash_split

    count = 0
    for start in range(0, rows, 1_000_000):
        numbers = np.arange(start, min(rows, start + 1_000_000))
        count += int((hash_split(0.15, 0.15, seed, rows=numbers) == 0).sum())
    return count


def train_command(path: Path, run_dir: Path, stream: bool, procs: int, threads: int) -> list[str]:
    args = ["--data", str(path)]
    for task in TASKS:
        args += ["--task", task]
    args += ["--categorical", CATEGORICAL, "--arch", "mmoe", "--epochs", "1"]
    args += ["--batch-size", "1024", "--split", "hash", "--device", "cpu", "--seed", "0"]
    args += ["--threads", str(threads), "--out", str(run_dir), "--overwrite", "--no-progress"]
    args += ["-q"] + (["--stream"] if stream else [])
    if procs == 1:
        return [sys.executable, "-m", "mtlkit", "train", *args]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return [*launcher, "--nproc-per-node", str(procs), "-m", "mtlkit", "train", *args]


def run_config(path: Path, rows: int, stream: bool, procs: int, threads: int, data_dir: Path):
    run_dir = data_dir / "runs" / f"{'stream' if stream else 'memory'}-{rows}-{procs}p"
    command = train_command(path, run_dir, stream, procs, threads)
    measured = subprocess.run(
        [sys.executable, __file__, "--measure", json.dumps(command)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    result = json.loads(measured.stdout.strip().splitlines()[-1])
    if result["returncode"] == 0:
        records = [
            json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        ]
        result["epoch_seconds"] = records[0]["seconds"]
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--in-memory-max-rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:  # the fresh measuring process of one configuration
        print(json.dumps(measure(json.loads(args.measure))))
        return 0

    results = []
    for rows in args.rows:
        path = table_path(args.data_dir, rows)
        n_train = train_rows(rows)
        for stream in (True, False):
            if not stream and rows > args.in_memory_max_rows:
                continue
            for procs in args.procs:
                print(f"{rows:,} rows, {'stream' if stream else 'in memory'}, {procs} process(es)")
                result = run_config(path, rows, stream, procs, args.threads, args.data_dir)
                result |= {"rows": rows, "train_rows": n_train, "stream": stream, "procs": procs}
                results.append(result)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["returncode"] == 0 for r in results) else 1


def print_table(results: list[dict]) -> None:
    header = ["rows", "data", "procs", "RSS largest", "RSS all", "epoch s", "rows/s", "wall s"]
    lines = [header]
    for r in results:
        ok = r["returncode"] == 0
        epoch = r.get("epoch_seconds")
        lines.append(
            [
                f"{r['rows']:,}",
                "stream" if r["stream"] else "in memory",
                str(r["procs"]),
                f"{r['rss_largest'] / GIB:.2f} GiB",
                f"{r['rss_sum'] / GIB:.2f} GiB",
                f"{epoch:.1f}" if ok else f"failed ({r['returncode']})",
                f"{r['train_rows'] / epoch:,.0f}" if ok else "-",
                f"{r['wall']:.1f}",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for i, line in enumerate(lines):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    _print_targets(results)


def _print_targets(results: list[dict]) -> None:
    """The issue's targets, where the results hold both sides of a comparison."""

    def find(rows, stream, procs):
        for r in results:
            if (r["rows"], r["stream"], r["procs"]) == (rows, stream, procs) and r[
                "returncode"
            ] == 0:
                return r
        return None

    small, large = find(1_000_000, True, 1), find(10_000_000, True, 1)
    if small and large:
        ratio = large["rss_largest"] / small["rss_largest"]
        print(
            f"streamed peak RSS 10M / 1M rows: {ratio:.2f} (target <= 1.10); "
            f"10M: {large['rss_largest'] / GIB:.2f} GiB (target < 2 GiB)"
        )
    memory = find(1_000_000, False, 1)
    if small and memory:
        speed = memory["epoch_seconds"] / small["epoch_seconds"]
        print(f"streamed / in-memory rows/s at 1M rows, 1 process: {speed:.2f} (target >= 0.8)")
    for rows in (1_000_000, 10_000_000):
        one, two = find(rows, True, 1), find(rows, True, 2)
        if one and two:
            speed = one["epoch_seconds"] / two["epoch_seconds"]
            print(f"streamed {rows:,} rows: 2 processes / 1 process rows/s: {speed:.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
