"""``mtlkit group``: should these tasks be learned together?

One short training run of the configured shared model measures the lookahead affinity
``Z(i→j)`` (TAG) and the gradient relations of every task pair; the tasks are then split into at
most ``--groups`` groups maximizing total affinity. Prints the matrices, a verdict per pair and
the groups; writes ``groups.json`` and heatmap/line PNGs to the run directory. With
``--train-groups`` it also trains the all-in-one, single-task and grouped models and reports
each task's test metrics and Δm; with ``--pairwise`` it trains every pair (direct transfer).
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import numpy as np
import yaml

from mtlkit.analysis.grouping import OBJECTIVES, best_partition
from mtlkit.analysis.plots import plot_cosine_over_training, plot_matrix
from mtlkit.analysis.report import comparison_table, format_table, signed
from mtlkit.analysis.verdict import (
    DEFAULT_THRESHOLD,
    matrix_table,
    pair_verdicts,
    transfer_ratio,
    verdict_table,
)
from mtlkit.cli.flags import add_run_flags, run_config, run_directory
from mtlkit.config import ConfigError


def add_group_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``mtlkit group`` (same data/model/training flags as ``train``)."""
    p = subparsers.add_parser(
        "group",
        help="task relatedness: affinity, gradient relations and task groups",
        description=(
            "Measure inter-task affinity (TAG lookahead) and gradient relations in one short "
            "run, choose at most K task groups maximizing total affinity, and optionally train "
            "and compare them."
        ),
    )
    p.add_argument("--groups", type=int, default=2, metavar="K", help="model budget (default 2)")
    p.add_argument("--exactly", action="store_true", help="exactly K groups (default: at most K)")
    p.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default="mean",
        help="group score: mean affinity onto each member (TAG, default) or sum over pairs",
    )
    p.add_argument(
        "--search",
        choices=("auto", "exact", "heuristic"),
        default="auto",
        help="partition search: exact up to 12 tasks, heuristic beyond (auto)",
    )
    p.add_argument("--every", type=int, default=1, help="measure every N training steps")
    p.add_argument(
        "--lookahead-lr",
        type=float,
        dest="lookahead_lr",
        help="lookahead step size (default: the optimizer's current learning rate)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"verdict threshold on the mean transfer ratio (default {DEFAULT_THRESHOLD})",
    )
    p.add_argument(
        "--train-groups",
        action="store_true",
        dest="train_groups",
        help="also train all-in-one, single-task and grouped models; report metrics and Δm",
    )
    p.add_argument(
        "--pairwise", action="store_true", help="also train every task pair (direct transfer)"
    )
    add_run_flags(p, out_help="run directory (default runs/<dataset>-group)")
    return p


def _scale(matrix: np.ndarray) -> int:
    finite = np.abs(matrix[np.isfinite(matrix)])
    top = float(finite.max()) if finite.size else 0.0
    return 0 if top == 0 or top >= 0.1 else -math.floor(math.log10(top))


def _nested(matrix: np.ndarray) -> list:
    return [[None if not math.isfinite(v) else float(v) for v in row] for row in matrix.tolist()]


def group(args: argparse.Namespace) -> int:
    from mtlkit.runs.build import load_bundle
    from mtlkit.runs.relatedness import (
        measure_relatedness,
        metrics_of,
        pairwise_transfer,
        subset_config,
        train_groupings,
    )
    from mtlkit.runs.train import train_run
    from mtlkit.training.checkpoint import atomic_write_text, strict_json

    if args.groups < 1:
        raise ConfigError(f"--groups: expected K >= 1, got {args.groups}")
    if args.every < 1:
        raise ConfigError(f"--every: expected N >= 1, got {args.every}")
    if args.lookahead_lr is not None and args.lookahead_lr <= 0:
        raise ConfigError(f"--lookahead-lr: expected a value > 0, got {args.lookahead_lr}")
    if args.threshold < 0:
        raise ConfigError(f"--threshold: expected a value >= 0, got {args.threshold}")
    config = run_config(args)
    if config.model.arch == "stl":
        raise ConfigError(
            "model.arch: stl shares nothing between tasks; measure relatedness with a shared "
            "architecture such as hps"
        )
    out = run_directory(config, "group", args.overwrite)
    bundle = load_bundle(config)
    names = bundle.task_names
    if len(names) < 2:
        raise ConfigError(f"group: {bundle.name} has {len(names)} task; grouping needs two")
    if args.groups > len(names):
        raise ConfigError(f"--groups: {args.groups} groups for only {len(names)} tasks")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), out / "config.yaml")

    print(
        f"{bundle.name}: {len(names)} tasks; measuring affinity with {config.model.arch} over "
        f"{config.training.epochs} epoch(s), every {args.every} step(s) ...",
        flush=True,
    )
    rel = measure_relatedness(config, bundle, every=args.every, lr=args.lookahead_lr)
    affinity = rel.affinity.numpy()
    relations = rel.relations
    cosine = relations.cosine.numpy()
    conflict = relations.conflict_rate.numpy()
    grouping = best_partition(
        affinity, args.groups, exactly=args.exactly, objective=args.objective, method=args.search
    )
    groups = grouping.named(names)

    results: dict[str, Any] = {
        "dataset": bundle.name,
        "tasks": names,
        "budget": args.groups,
        "exactly": args.exactly,
        "objective": args.objective,
        "search": grouping.method,
        "groups": groups,
        "score": grouping.score,
        "affinity": _nested(affinity),
        "transfer_ratio": _nested(transfer_ratio(affinity)),
        "gradients": relations.to_dict(),
        "measurement": {
            "arch": config.model.arch,
            "epochs": config.training.epochs,
            "every": args.every,
            "lookahead_lr": args.lookahead_lr if args.lookahead_lr else "optimizer lr",
            "optimizer": config.optim.name,
            "lr": config.optim.lr,
            "steps_recorded": len(rel.steps),
            "train_seconds": rel.train_seconds,
            "callback_seconds": rel.callback_seconds,
            "overhead": rel.overhead,
        },
        "command": "mtlkit " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["group"] else None,
    }

    scale = _scale(affinity)
    unit = f" × 1e{scale}" if scale else ""
    print(f"\naffinity Z(i→j){unit}: row i = task stepped on, column j = task whose loss moves")
    print(matrix_table(affinity * 10.0**scale, names, "+.3f", "i \\ j"))
    print("\ngradient cosine (mean over recorded steps)")
    print(matrix_table(cosine, names, "+.3f"))
    print("\nconflict rate (share of recorded steps with gᵢ·gⱼ < 0)")
    print(matrix_table(conflict, names, ".2f"))

    pairwise = None
    stl = None
    if args.pairwise:
        print("\ntraining single-task models (stl) ...", flush=True)
        stl = train_run(subset_config(config, names, "stl"), out / "stl", True, bundle).test
        pairwise = pairwise_transfer(config, bundle, stl, out)
        results["pairwise"] = [{"tasks": list(pair), **gains} for pair, gains in pairwise.items()]
    verdicts = pair_verdicts(
        affinity, names, args.threshold, cosine=cosine, conflict_rate=conflict, pairwise=pairwise
    )
    results["verdicts"] = verdicts
    results["threshold"] = args.threshold
    print(
        f"\nverdict per pair (τ̄ = mean transfer ratio; helps ≥ {args.threshold:g}, "
        f"hurts ≤ {-args.threshold:g})"
    )
    print(verdict_table(verdicts))
    if pairwise is not None:
        rows = [
            [f"{a} + {b}", signed(g[a]), signed(g[b]), signed(g["delta_m"])]
            for (a, b), g in pairwise.items()
        ]
        print("\npairwise transfer: each task's Δm % in the pair model vs its single-task model")
        print(format_table(["pair", "Δm task i", "Δm task j", "mean"], rows))

    budget = f"exactly {args.groups}" if args.exactly else f"at most {args.groups}"
    print(
        f"\ngroups ({budget}, objective {args.objective}, {grouping.method} search, "
        f"total affinity {grouping.score:+.4g}):"
    )
    for i, g in enumerate(groups, 1):
        print(f"  group {i}: {', '.join(g)}")
    print(
        f"measured at {len(rel.steps)} steps; affinity recording took {rel.callback_seconds:.1f}s "
        f"of {rel.train_seconds:.1f}s training (overhead {100 * rel.overhead:.0f}% over training "
        "without it)"
    )

    plots = [
        plot_matrix(
            affinity * 10.0**scale,
            names,
            out / "affinity.png",
            title=f"{bundle.name}: affinity Z(i→j){unit}",
        ),
        plot_matrix(
            cosine,
            names,
            out / "cosine.png",
            title=f"{bundle.name}: mean gradient cosine",
            xlabel="task j",
            ylabel="task i",
        ),
        plot_cosine_over_training(
            relations.steps,
            relations.cosine_series,
            names,
            out / "cosine_over_training.png",
            title=f"{bundle.name}: gradient cosine over training",
        ),
    ]
    results["plots"] = [p.name for p in plots]
    atomic_write_text(strict_json(results, indent=2), out / "groups.json")

    if args.train_groups:
        print()
        training = train_groupings(config, bundle, groups, out, stl=stl)
        results["training"] = training.to_dict()
        atomic_write_text(strict_json(results, indent=2), out / "groups.json")
        print(f"\n{bundle.name}: test metrics (grouped = {' | '.join(map(', '.join, groups))})")
        print(comparison_table(training.results, metrics_of(bundle), training.delta))
    print(f"\nwrote {out / 'groups.json'} and {', '.join(p.name for p in plots)}")
    return 0
