"""Where multi-task learning helps on the bundled real data, and where it does not.

For each case, single-task models (``stl``: one MLP/LeNet per task) and hard parameter sharing
(``hps``: one shared trunk, one head per task) are trained on the same data for the same
epochs; seed ``s`` sets the data split (and which labels are kept) *and* the initialisation.
Reported per case: each task's main test metric and Δm (%, the mean relative gain of HPS over
STL; positive = multi-task is better), mean ± std over seeds (an undefined value is left out and
the seeds left counted, as in ``mtlkit compare``), and how many seeds HPS won.
Writes ``benchmarks/results/where_mtl_helps.md`` and ``.json``. The cases ``digits-50`` and
``multimnist-1k`` are ``mtlkit demo``'s (``DEMO_CASES``).

    .venv/bin/python benchmarks/helps/where_mtl_helps.py               # every case, 3 seeds
    .venv/bin/python benchmarks/helps/where_mtl_helps.py --cases digits-50
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from mtlkit.analysis import delta_m
from mtlkit.analysis.report import mean_std
from mtlkit.cli.commands import DEMO_CASES
from mtlkit.cli.threads import positive_int
from mtlkit.config import Config
from mtlkit.config.schema import from_dict, merge
from mtlkit.runs import load_bundle, train_run

RESULTS = Path(__file__).resolve().parents[1] / "results"
MLP = {"encoder": "mlp", "encoder_options": {"hidden": [64]}}
DIGITS = {
    "data": {"dataset": "digits", "batch_size": 32},
    "model": MLP,
    "optim": {"name": "adam", "lr": 3e-3},
    "training": {"epochs": 40},
}
PENGUINS = {
    "data": {"dataset": "penguins", "batch_size": 32},
    "model": {"encoder_options": {"hidden": [32, 32]}},
    "optim": {"name": "adam", "lr": 3e-3},
    "training": {"epochs": 50},
}
MULTIMNIST = {
    "data": {"dataset": "multimnist", "batch_size": 128},
    "optim": {"name": "adam", "lr": 1e-3},
    "training": {"epochs": 10},
}
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "digits-50": (
        "digits; digit class from 50 labels, parity and ≥5 from all 1,079",
        DEMO_CASES["digits-50"],
    ),
    "digits-all": ("digits; every task from all 1,079 labels", DIGITS),
    "penguins-20": (
        "penguins; body mass from 20 labels, species and sex from all",
        merge(PENGUINS, {"data.options": {"labelled": {"body_mass": 20}}}),
    ),
    "penguins-all": ("penguins; every task from all labels", PENGUINS),
    "multimnist-1k": (
        "MultiMNIST, 1,000 training images",
        DEMO_CASES["multimnist-1k"],
    ),
    "multimnist-10k": (
        "MultiMNIST, 10,000 training images",
        merge(MULTIMNIST, {"data.options": {"n_train": 10000}}),
    ),
}


def case_config(case: str, arch: str, seed: int, epochs: int | None = None) -> Config:
    """The configuration of ``arch`` on ``case`` with data and initialisation seeded by ``seed``."""
    raw = merge(
        CASES[case][1],
        {
            "model.arch": arch,
            "seed": seed,
            "data.options.seed": seed,
            "training.progress": False,
            "device": "cpu",
        },
    )
    if epochs:
        raw = merge(raw, {"training.epochs": epochs})
    return from_dict(Config, raw)


def compare_case(case: str, seed: int, epochs: int | None = None) -> dict[str, Any]:
    """Test metrics of STL and HPS on one seed of ``case``, and Δm of HPS against STL."""
    config = case_config(case, "stl", seed, epochs)
    bundle = load_bundle(config)
    test = {
        arch: train_run(case_config(case, arch, seed, epochs), bundle=bundle).test
        for arch in ("stl", "hps")
    }
    main = {t.name: [t.main_metric] for t in bundle.tasks}
    return {
        "seed": seed,
        "test": test,
        "main": {t: m[0] for t, m in main.items()},
        "delta_m": delta_m(test["hps"], test["stl"], main),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--seeds", type=positive_int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "where_mtl_helps")
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for case in cases:
        if case not in CASES:
            parser.error(f"--cases: unknown case {case!r}; choose from {', '.join(CASES)}")
    lines = [
        "| case | task (metric) | stl | hps | Δm % (hps vs stl) | hps wins |",
        "|---|---|---|---|---|---|",
    ]
    records: dict[str, list[dict[str, Any]]] = {}
    for case in cases:
        start = time.perf_counter()
        records[case] = [compare_case(case, seed) for seed in range(args.seeds)]
        runs = records[case]
        deltas = [r["delta_m"] for r in runs]
        wins = sum(d > 0 for d in deltas)
        first = True
        for task, metric in runs[0]["main"].items():
            stl = [r["test"]["stl"][task][metric] for r in runs]
            hps = [r["test"]["hps"][task][metric] for r in runs]
            label = f"{case}: {CASES[case][0]}" if first else ""
            delta = mean_std(deltas, digits=2) if first else ""
            win = f"{wins}/{len(runs)}" if first else ""
            lines.append(
                f"| {label} | {task} ({metric}) | {mean_std(stl)} | {mean_std(hps)} "
                f"| {delta} | {win} |"
            )
            first = False
        print(
            f"{case}: Δm {mean_std(deltas, digits=2)} %, hps wins {wins}/{len(runs)} "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    table = "\n".join(lines)
    print(f"\n{table}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    note = (
        f"mean ± std over seeds 0..{args.seeds - 1}; command: benchmarks/helps/where_mtl_helps.py"
    )
    args.out.with_suffix(".md").write_text(
        f"{table}\n\n{note} --cases {','.join(cases)} --seeds {args.seeds}\n"
    )
    args.out.with_suffix(".json").write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
