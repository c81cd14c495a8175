"""Planted structure on ``synthetic``: recovery of the clusters over seeds, and Δm of the
grouped models against the all-in-one model.

Seven regression tasks: clusters {0, 1, 2} and {3, 4, 5} (relatedness 0.9) and task 6 on its
own direction (unrelated to both). One measuring run per seed (HPS, MLP [32], Adam lr 0.01,
2 epochs, affinity every step), then the exact partition into at most k groups.

    .venv/bin/python benchmarks/analysis/planted.py                    # 10 seeds, k = 2 and 3
    .venv/bin/python benchmarks/analysis/planted.py --train-seeds 3    # + grouped vs all-in-one
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "analysis"))

from test_planted import planted_config, recovers  # noqa: E402

from mtlkit.analysis import best_partition, measure_relatedness, train_groupings  # noqa: E402
from mtlkit.training.run import load_bundle  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--train-seeds", type=int, default=0, help="seeds trained (k = 3)")
    parser.add_argument("--objective", default="mean", choices=["mean", "sum"])
    args = parser.parse_args()
    hits = {2: 0, 3: 0}
    overheads = []
    print("| seed | k=2 groups | k=3 groups | overhead |")
    print("|---|---|---|---|")
    for seed in range(args.seeds):
        result = measure_relatedness(planted_config(seed), every=1)
        a = result.affinity.numpy()
        found = {k: best_partition(a, k, objective=args.objective).groups for k in hits}
        for k in hits:
            hits[k] += recovers(found[k], k)
        overheads.append(result.overhead)
        print(f"| {seed} | {found[2]} | {found[3]} | {100 * result.overhead:.0f}% |", flush=True)
    print(
        f"\nrecovered: k=2 {hits[2]}/{args.seeds}, k=3 {hits[3]}/{args.seeds}; "
        f"mean overhead {100 * sum(overheads) / len(overheads):.0f}% (affinity every step)"
    )
    if args.train_seeds:
        print("\n| seed | groups (k=3) | Δm all-in-one | Δm grouped |")
        print("|---|---|---|---|")
    for seed in range(args.train_seeds):
        config = planted_config(seed)
        bundle = load_bundle(config)
        a = measure_relatedness(config, bundle, every=1).affinity.numpy()
        groups = best_partition(a, 3, objective=args.objective).named(bundle.task_names)
        trained = train_groupings(config, bundle, groups, log=lambda *_: None)
        delta = trained.delta
        print(f"| {seed} | {groups} | {delta['all']:+.2f} | {delta['grouped']:+.2f} |", flush=True)


if __name__ == "__main__":
    main()
