"""Ma et al. (KDD 2018), figure 4, scaled down: shared-bottom (HPS), one-gate MoE (OMoE) and
MMoE on the ``mmoe_synthetic`` pair of regression tasks at label correlations 1.0, 0.9, 0.5, 0.1.

Sizes (the paper's, scaled to a 2-core CPU): d = 100 inputs, 8 experts of one ReLU layer of 16
units, gates reading the raw input (``gate_input: input``), towers of one hidden layer of 8;
the shared bottom is one ReLU layer of 128 = 8 × 16 units, so HPS and the MoE models have the
same bottom parameters (the gates add 808 per gate). 6,000 training rows (the paper: far more),
Adam lr 1e-3, batch 128, a fixed number of epochs, the epoch of best validation loss kept.
Reported: test MSE (raw labels) averaged over the two tasks, mean ± std over seeds, and the
Pearson correlation of the two test labels. Writes ``benchmarks/results/mmoe_correlation.md``
(table), ``.json`` (every run) and ``.png`` (the trend).

    .venv/bin/python benchmarks/mmoe/correlation.py                  # 5 seeds, 30 epochs
    .venv/bin/python benchmarks/mmoe/correlation.py --seeds 3 --epochs 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from mtlkit.config import Config
from mtlkit.config.schema import from_dict
from mtlkit.runs import load_bundle, train_run

ARCHS = ("hps", "omoe", "mmoe")
CORRELATIONS = (1.0, 0.9, 0.5, 0.1)
RESULTS = Path(__file__).resolve().parents[1] / "results"
EXPERT_WIDTH, NUM_EXPERTS, TOWER_WIDTH = 16, 8, 8


def mmoe_config(
    arch: str,
    correlation: float,
    seed: int,
    n_samples: int = 10000,
    epochs: int = 30,
    lr: float = 1e-3,
    scale: float = 1.0,
    expert_width: int = EXPERT_WIDTH,
) -> Config:
    """The run of ``arch`` on ``mmoe_synthetic`` at ``correlation`` (data and init by ``seed``)."""
    moe = {"num_experts": NUM_EXPERTS, "gate_input": "input", "head_hidden": TOWER_WIDTH}
    width = expert_width if arch in ("omoe", "mmoe") else expert_width * NUM_EXPERTS
    return from_dict(
        Config,
        {
            "data": {
                "dataset": "mmoe_synthetic",
                "options": {
                    "correlation": correlation,
                    "n_samples": n_samples,
                    "scale": scale,
                    "seed": seed,
                },
                "batch_size": 128,
            },
            "model": {
                "arch": arch,
                "encoder": "mlp",
                "encoder_options": {"hidden": [width]},
                "arch_options": moe if arch in ("omoe", "mmoe") else {"head_hidden": TOWER_WIDTH},
            },
            "optim": {"name": "adam", "lr": lr},
            "training": {"epochs": epochs, "progress": False},
            "seed": seed,
            "device": "cpu",
        },
    )


def test_mse(config: Config) -> float:
    """Test MSE of the trained model (raw labels), averaged over the two tasks."""
    result = train_run(config)
    return statistics.mean(m["mse"] for m in result.test.values())


def label_correlation(correlation: float, seed: int, n_samples: int) -> float:
    """Pearson correlation of the two tasks' test labels."""
    bundle = load_bundle(mmoe_config("hps", correlation, seed, n_samples))
    y1, y2 = (bundle.test.targets[t].numpy() for t in ("y1", "y2"))
    return float(np.corrcoef(y1, y2)[0, 1])


def _plot(summary: dict[str, dict[float, list[float]]], path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for arch, cells in summary.items():
        xs = sorted(cells)
        means = [statistics.mean(cells[x]) for x in xs]
        stds = [statistics.stdev(cells[x]) if len(cells[x]) > 1 else 0.0 for x in xs]
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=arch)
    ax.set_xlabel("task correlation p (cosine of the task weights)")
    ax.set_ylabel("test MSE, mean of the two tasks")
    ax.invert_xaxis()
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--n-samples", type=int, default=10000)
    parser.add_argument("--correlations", default=",".join(map(str, CORRELATIONS)))
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--out", type=Path, default=RESULTS / "mmoe_correlation")
    args = parser.parse_args()
    correlations = [float(c) for c in args.correlations.split(",")]
    archs = [a.strip() for a in args.archs.split(",")]
    start = time.perf_counter()
    summary: dict[str, dict[float, list[float]]] = {a: {} for a in archs}
    pearson: dict[float, list[float]] = {}
    runs: list[dict[str, Any]] = []
    for correlation in correlations:
        for seed in range(args.seeds):
            pearson.setdefault(correlation, []).append(
                label_correlation(correlation, seed, args.n_samples)
            )
            for arch in archs:
                config = mmoe_config(arch, correlation, seed, args.n_samples, args.epochs)
                mse = test_mse(config)
                summary[arch].setdefault(correlation, []).append(mse)
                runs.append({"arch": arch, "correlation": correlation, "seed": seed, "mse": mse})
                print(f"p={correlation} seed={seed} {arch}: {mse:.4f}", flush=True)
    minutes = (time.perf_counter() - start) / 60

    def cell(values: list[float]) -> str:
        return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"

    lines = [
        "| correlation p | label Pearson | " + " | ".join(archs) + " |",
        "|---|---|" + "---|" * len(archs),
    ]
    for correlation in correlations:
        row = [f"{correlation}", f"{statistics.mean(pearson[correlation]):.3f}"]
        row += [cell(summary[a][correlation]) for a in archs]
        lines.append("| " + " | ".join(row) + " |")
    command = (
        f"benchmarks/mmoe/correlation.py --seeds {args.seeds} --epochs {args.epochs} "
        f"--n-samples {args.n_samples} --correlations {args.correlations} --archs {args.archs}"
    )
    if "hps" in archs and "mmoe" in archs:
        wins = ", ".join(
            f"{c}: {sum(m < h for m, h in zip(summary['mmoe'][c], summary['hps'][c]))}/{args.seeds}"
            for c in correlations
        )
        lines += ["", f"Seeds where MMoE's test MSE is below HPS's (same data): {wins}."]
    table = "\n".join(lines)
    note = (
        f"Test MSE (mean of the two tasks), mean ± std over seeds 0..{args.seeds - 1}; "
        f"{minutes:.1f} min. Command: {command}"
    )
    print(f"\n{table}\n\n{note}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(f"{table}\n\n{note}\n")
    args.out.with_suffix(".json").write_text(json.dumps(runs, indent=1))
    title = f"mmoe_synthetic, {args.seeds} seeds, {args.epochs} epochs"
    _plot(summary, args.out.with_suffix(".png"), title)


if __name__ == "__main__":
    main()
