"""``mtlkit compare``: architectures × weighting strategies × seeds on one dataset, one table.

Every combination is trained with the same configuration (only ``model.arch``,
``weighting.name`` and ``seed`` change). Δm of each run is taken against the single-task
baseline (``stl`` with equal weighting) of the same seed; the table reports mean ± std over
seeds of each task's main test metric, of Δm, the parameter count and seconds per epoch. A metric
whose relative change is undefined (a single-task value of 0, or NaN) is left out of Δm
(:func:`mtlkit.analysis.delta_m_terms`): its method's Δm is marked ``*`` and a note under the
table names the task, the metric, why and in which seeds.

Progress goes to the ``mtlkit.compare`` logger: ``run i/N: METHOD, seed S`` before each run and
``run i/N done in T s; ETA E s`` after it (ETA: the mean time of the runs so far × the runs
left). ``--quiet`` hides both (the table is still printed); ``--verbose`` adds each run's line
per epoch (the ``mtlkit.training`` logger), hidden otherwise.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mtlkit.cli.flags import add_run_flags, run_config
from mtlkit.config import ConfigError, with_overrides

logger = logging.getLogger("mtlkit.compare")

VARIED_FLAGS = ("arch", "weighting", "seed", "overwrite")
"""Run flags ``compare`` leaves out: it varies these itself (``--archs`` ...) and writes no run
directory of its own."""


def add_compare_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare", help="architectures x weighting strategies x seeds on one dataset"
    )
    parser.add_argument("--archs", default="hps", help="comma-separated architectures")
    parser.add_argument("--weightings", default="ew", help="comma-separated strategies")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    add_run_flags(
        parser, out_help="where the table goes (default runs/compare)", exclude=VARIED_FLAGS
    )


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


@contextmanager
def _epoch_lines(shown: bool) -> Iterator[None]:
    """Hide the trainer's line per epoch (unless ``shown``) for the duration of the block."""
    training = logging.getLogger("mtlkit.training")
    level = training.level
    if not shown:
        training.setLevel(logging.WARNING)
    try:
        yield
    finally:
        training.setLevel(level)


def _method(arch: str, weighting: str) -> str:
    return arch if arch == "stl" else f"{arch} + {weighting}"


TASK_LEFT_OUT = "no metric left, so Δm is the mean over the other tasks"


def _distinct(
    text: str, flag: str, what: str, parse: Callable[[str], Any] = str, kind: str = "names"
) -> list[Any]:
    """A comma-separated option (``--archs``, ``--weightings``, ``--seeds``): at least one item,
    none repeated (a repeated method or seed trains the same runs twice into one row, and its
    std over seeds counts them twice)."""
    try:
        items = [parse(item) for item in _split(text)]
    except ValueError:
        raise ConfigError(f"{flag}: expected comma-separated {kind}, got {text!r}") from None
    if not items:
        raise ConfigError(f"{flag}: expected at least one {what}, got {text!r}")
    repeated = next((x for i, x in enumerate(items) if x in items[:i]), None)
    if repeated is not None:
        raise ConfigError(f"{flag}: {repeated!r} is given twice")
    return items


def _delta_cell(records: list[dict[str, Any]]) -> str:
    """Δm's mean ± std over seeds (``0`` for the baseline against itself), marked ``*`` when a
    seed's Δm leaves a metric out."""
    from mtlkit.analysis.report import mean_std

    text = mean_std([r["delta_m"] for r in records])
    if text in ("0.0000 ± 0.0000", "0.0000"):
        text = "0"
    return f"{text} *" if any(r["delta_m_left_out"] for r in records) else text


def compare(args: argparse.Namespace) -> int:
    from mtlkit.analysis import delta_m_terms, format_table
    from mtlkit.analysis.report import mean_std
    from mtlkit.runs import load_bundle, train_run
    from mtlkit.training.checkpoint import atomic_write_text, strict_json

    seeds = _distinct(args.seeds, "--seeds", "seed", parse=int, kind="integers")
    base = run_config(args, {"training.progress": False})
    archs = _distinct(args.archs, "--archs", "architecture")
    weightings = _distinct(args.weightings, "--weightings", "strategy")
    methods = [(a, w) for a in archs for w in weightings if a != "stl"]
    methods = [("stl", "ew"), *methods]
    bundle = load_bundle(base)
    metrics = {t.name: list(t.metrics) for t in bundle.tasks}
    out = Path(args.out or "runs/compare")
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {m: [] for m in methods}
    plan = [(seed, arch, weighting) for seed in seeds for arch, weighting in methods]
    started = time.perf_counter()
    for i, (seed, arch, weighting) in enumerate(plan, start=1):
        config = with_overrides(
            base, {"model.arch": arch, "weighting.name": weighting, "seed": seed}
        )
        logger.info("run %d/%d: %s, seed %d", i, len(plan), _method(arch, weighting), seed)
        run_started = time.perf_counter()
        with _epoch_lines(getattr(args, "verbose", False)):
            result = train_run(config, bundle=bundle)
        now = time.perf_counter()
        eta = (now - started) / i * (len(plan) - i)
        logger.info("run %d/%d done in %.1f s; ETA %.0f s", i, len(plan), now - run_started, eta)
        runs[(arch, weighting)].append(
            {
                "seed": seed,
                "test": result.test,
                "params": result.model.num_parameters(),
                "seconds_per_epoch": result.seconds_per_epoch,
            }
        )
    left_out: dict[tuple[str, str], list[int]] = {}  # ("task metric", why) -> seeds
    for records in runs.values():
        for record, baseline in zip(records, runs[("stl", "ew")]):
            terms = delta_m_terms(record["test"], baseline["test"], metrics)
            record["delta_m"] = terms.value
            record["delta_m_tasks"] = dict(terms.task_gains)
            record["delta_m_left_out"] = dict(terms.left_out)
            no_metric_left = [t for t, gain in terms.task_gains.items() if math.isnan(gain)]
            for term in [*terms.left_out.items(), *((t, TASK_LEFT_OUT) for t in no_metric_left)]:
                seeds_left_out = left_out.setdefault(term, [])
                if record["seed"] not in seeds_left_out:
                    seeds_left_out.append(record["seed"])
    headers = [
        "method",
        *(f"{t} {bundle.task(t).main_metric}" for t in metrics),
        "Δm %",
        "params",
        "s/epoch",
    ]
    rows = []
    for (arch, weighting), records in runs.items():
        rows.append(
            [
                _method(arch, weighting),
                *(
                    mean_std([r["test"][t][bundle.task(t).main_metric] for r in records])
                    for t in metrics
                ),
                _delta_cell(records),
                f"{records[0]['params']:,}",
                f"{statistics.mean(r['seconds_per_epoch'] for r in records):.2f}",
            ]
        )
    table = format_table(headers, rows)
    if left_out:
        table += "\n" + "\n".join(
            f"* Δm leaves out {term}: {why} (seeds {', '.join(map(str, in_seeds))})"
            for (term, why), in_seeds in left_out.items()
        )
    print(f"\n{bundle.name}: test metrics, mean ± std over seeds {seeds}\n{table}")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(table + "\n", out / "table.txt")
    atomic_write_text(
        strict_json({f"{a}+{w}": r for (a, w), r in runs.items()}, indent=2), out / "results.json"
    )
    return 0
