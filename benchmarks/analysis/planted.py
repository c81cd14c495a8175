"""Planted structure on ``synthetic``: the measured conflict of the planted task, recovery of the
clusters over seeds, and Δm of the grouped models against the all-in-one model.

Seven regression tasks: clusters {0, 1, 2} and {3, 4, 5} (relatedness 0.9) and task 6, which
conflicts with both (``conflicting=[6], conflict="curvature"``: its target is even and convex in
the two clusters' directions, theirs odd and saturating; see ``load_synthetic``). One measuring
run per seed (HPS, MLP [32], Adam lr 0.01, 2 epochs, affinity every step, one thread), then the
exact partition into at most k groups (mean objective). With ``--train-seeds N``, for seeds
0..N−1: the single-task, all-in-one and grouped (k = 3) models, each trained for the same
2 epochs, and Δm (%) of the all-in-one and grouped models against the single-task ones.

    .venv/bin/python benchmarks/analysis/planted.py                     # 10 seeds, k = 2 and 3
    .venv/bin/python benchmarks/analysis/planted.py --train-seeds 10    # + grouped vs all-in-one
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "analysis"))

from test_planted import conflict_of, planted_config, recovers  # noqa: E402

from mtlkit.analysis import best_partition  # noqa: E402
from mtlkit.cli.threads import positive_int  # noqa: E402
from mtlkit.runs import load_bundle, measure_relatedness, train_groupings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=positive_int, default=10)
    parser.add_argument("--train-seeds", type=int, default=0, help="seeds trained (k = 3)")
    parser.add_argument("--objective", default="mean", choices=["mean", "sum"])
    parser.add_argument(
        "--conflict", default="curvature", choices=["curvature", "sign"], help="task 6's kind"
    )
    args = parser.parse_args()
    hits = {2: 0, 3: 0}
    overheads, conflicting = [], 0
    print(
        "cos6 / Z(6→·) / Z(·→6): task 6 against the six clustered tasks (mean gradient cosine, "
        "mean affinity × 1e2 each way); cos in: mean cosine inside the clusters\n"
    )
    print("| seed | cos6 | Z(6→·) | Z(·→6) | cos in | k=2 groups | k=3 groups | overhead |")
    print("|---|---|---|---|---|---|---|---|")
    for seed in range(args.seeds):
        result = measure_relatedness(planted_config(seed, args.conflict), every=1)
        a = result.affinity.numpy()
        found = {k: best_partition(a, k, objective=args.objective).groups for k in hits}
        for k in hits:
            hits[k] += recovers(found[k], k)
        c = conflict_of(result)
        conflicting += c["cos"] < 0 and c["z_from"] < 0 and c["z_to"] < 0 and c["cos_within"] > 0
        overheads.append(result.overhead)
        print(
            f"| {seed} | {c['cos']:+.3f} | {100 * c['z_from']:+.4f} | {100 * c['z_to']:+.4f} "
            f"| {c['cos_within']:+.3f} | {found[2]} | {found[3]} | {100 * result.overhead:.0f}% |",
            flush=True,
        )
    print(
        f"\nrecovered: k=2 {hits[2]}/{args.seeds}, k=3 {hits[3]}/{args.seeds}; task 6 "
        f"conflicting (cos6, Z(6→·), Z(·→6) < 0 < cos in) in {conflicting}/{args.seeds}; "
        f"mean overhead {100 * statistics.mean(overheads):.0f}% (affinity every step)"
    )
    if not args.train_seeds:
        return
    print("\n| seed | groups (k=3) | Δm all-in-one | Δm grouped | grouped better |")
    print("|---|---|---|---|---|")
    deltas = {"all": [], "grouped": []}
    for seed in range(args.train_seeds):
        config = planted_config(seed, args.conflict)
        bundle = load_bundle(config)
        a = measure_relatedness(config, bundle, every=1).affinity.numpy()
        found = best_partition(a, 3, objective=args.objective)
        trained = train_groupings(
            config, bundle, found.named(bundle.task_names), log=lambda *_: None
        )
        for kind in deltas:
            deltas[kind].append(trained.delta[kind])
        better = "yes" if trained.delta["grouped"] > trained.delta["all"] else "no"
        print(
            f"| {seed} | {found.groups} | {trained.delta['all']:+.2f} "
            f"| {trained.delta['grouped']:+.2f} | {better} |",
            flush=True,
        )
    wins = sum(g > a for g, a in zip(deltas["grouped"], deltas["all"], strict=True))

    def stats(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):+.2f} ± {spread:.2f}"

    print(
        f"\nΔm vs single-task (mean ± std over {args.train_seeds} seeds): all-in-one "
        f"{stats(deltas['all'])}%, grouped {stats(deltas['grouped'])}%; grouped better in "
        f"{wins}/{args.train_seeds} seeds"
    )


if __name__ == "__main__":
    main()
