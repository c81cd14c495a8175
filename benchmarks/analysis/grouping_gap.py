"""Optimality gap of the grouping heuristic against exact search, on random affinity matrices.

    .venv/bin/python benchmarks/analysis/grouping_gap.py            # n = 6..12, 20 cases each
    .venv/bin/python benchmarks/analysis/grouping_gap.py --sizes 8 10 --cases 5

Gap = (S_exact − S_heuristic) / |S_exact| per case (0: the heuristic found an optimum); the
matrices are N(0, 1) entries plus a planted block structure of strength ``--block``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mtlkit.analysis.grouping import exact_partition, heuristic_partition


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[6, 8, 10, 12])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--block", type=float, default=0.5)
    parser.add_argument("--objective", default="mean", choices=["mean", "sum"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print("| T | k | cases | optimal | mean gap | max gap | exact s | heuristic s |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        for k in (2, 3, 4):
            gaps, t_exact, t_heur = [], 0.0, 0.0
            for _ in range(args.cases):
                labels = rng.integers(0, k, size=n)
                a = rng.normal(size=(n, n)) + args.block * (labels[:, None] == labels[None, :])
                start = time.perf_counter()
                exact = exact_partition(a, k, objective=args.objective).score
                t_exact += time.perf_counter() - start
                start = time.perf_counter()
                heur = heuristic_partition(a, k, objective=args.objective).score
                t_heur += time.perf_counter() - start
                gaps.append((exact - heur) / max(abs(exact), 1e-12))
            gaps = np.asarray(gaps)
            print(
                f"| {n} | {k} | {len(gaps)} | {int((gaps < 1e-9).sum())} | "
                f"{100 * gaps.mean():.2f}% | {100 * gaps.max():.2f}% | "
                f"{t_exact / len(gaps):.3f} | {t_heur / len(gaps):.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
