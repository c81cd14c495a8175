"""Ma et al. (KDD 2018), figure 4, scaled down: shared-bottom (HPS), one-gate MoE (OMoE) and
MMoE on the ``mmoe_synthetic`` pair of regression tasks at correlations 1.0, 0.9, 0.5, 0.1.

The paper's protocol (§4.3): d = 100 inputs; OMoE and MMoE with 8 experts, each one ReLU layer of
16 units; towers of one hidden layer of 8; the shared bottom one layer of 113 units, the width
that gives it the experts' parameter count (``paper_bottom_width``); Adam; 200 runs per model and
correlation, each with fresh data and initialisation; the figure plots the average loss over
training steps. Here: gates read the raw input (``gate_input: input``), fewer runs (``--seeds``),
a fixed data set per run (``--n-samples``, 60% for training) instead of a stream, and the loss
plotted is the validation MSE (raw labels, mean of the two tasks) after every epoch. The
paper's own measure, the training loss on fresh data over many runs, is ``training_loss.py``.

Reported, mean ± std over seeds: the validation MSE at three step budgets (a quarter, half and
all of the epochs), its mean over all epochs (the area under the curve per epoch), the test MSE
of the epoch of lowest validation loss, and the Pearson correlation of the two test labels.
Writes ``<out>.md`` (tables), ``.json`` (every run's curve) and ``.png`` (the curves, one panel
per correlation, as the paper's figure 4).

    .venv/bin/python benchmarks/mmoe/correlation.py --seeds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mtlkit.cli.threads import positive_int
from mtlkit.config import Config
from mtlkit.config.schema import from_dict
from mtlkit.runs import load_bundle, train_run

ARCHS = ("hps", "omoe", "mmoe")
CORRELATIONS = (1.0, 0.9, 0.5, 0.1)
RESULTS = Path(__file__).resolve().parents[1] / "results"
N_FEATURES, EXPERT_WIDTH, NUM_EXPERTS, TOWER_WIDTH, NUM_TASKS = 100, 16, 8, 8, 2


def paper_bottom_width(
    n_features: int = N_FEATURES,
    expert_width: int = EXPERT_WIDTH,
    num_experts: int = NUM_EXPERTS,
    tower_width: int = TOWER_WIDTH,
    num_tasks: int = NUM_TASKS,
) -> int:
    """Width ``h`` of a one-layer shared bottom with the MoE models' weight count (Ma et al. §4.3).

    Experts and towers: ``P = d·e·n + T·(e·t + t)``; shared bottom and towers:
    ``h·d + T·(h·t + t)``; so ``h = ⌈(P − T·t) / (d + T·t)⌉`` (113 at the paper's sizes).
    """
    weights = n_features * expert_width * num_experts
    weights += num_tasks * (expert_width * tower_width + tower_width)
    return -(-(weights - num_tasks * tower_width) // (n_features + num_tasks * tower_width))


def mmoe_config(
    arch: str,
    correlation: float,
    seed: int,
    n_samples: int = 10000,
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int = 128,
    scale: float = 1.0,
    expert_width: int = EXPERT_WIDTH,
    sines: str = "reference",
    num_sines: int = 10,
    n_features: int = N_FEATURES,
    bottom_width: int | None = None,
) -> Config:
    """The run of ``arch`` on ``mmoe_synthetic`` at ``correlation`` (data and init by ``seed``);
    the shared bottom is ``bottom_width`` wide (default: the experts' weight count)."""
    moe = arch in ("omoe", "mmoe")
    width = expert_width if moe else bottom_width or paper_bottom_width(n_features, expert_width)
    arch_options = {"head_hidden": TOWER_WIDTH}
    if moe:
        arch_options |= {"num_experts": NUM_EXPERTS, "gate_input": "input"}
    data_options = {
        "correlation": correlation,
        "n_samples": n_samples,
        "n_features": n_features,
        "scale": scale,
        "sines": sines,
        "num_sines": num_sines,
    }
    return from_dict(
        Config,
        {
            "data": {
                "dataset": "mmoe_synthetic",
                "options": data_options | {"seed": seed},
                "batch_size": batch_size,
            },
            "model": {
                "arch": arch,
                "encoder": "mlp",
                "encoder_options": {"hidden": [width]},
                "arch_options": arch_options,
            },
            "optim": {"name": "adam", "lr": lr},
            "training": {"epochs": epochs, "progress": False},
            "seed": seed,
            "device": "cpu",
        },
    )


@dataclass(frozen=True)
class Curve:
    """One run: the validation MSE after each epoch (at ``steps``) and the final test MSE."""

    steps: list[int]
    val_mse: list[float]
    test_mse: float

    @property
    def area(self) -> float:
        """Mean validation MSE over the epochs (area under the curve per epoch)."""
        return statistics.mean(self.val_mse)


def _mean_mse(metrics: dict[str, dict[str, float]]) -> float:
    return statistics.mean(m["mse"] for m in metrics.values())


def train_curve(config: Config) -> Curve:
    """Train ``config``; validation MSE per epoch and test MSE (raw labels, mean of the tasks)."""
    result = train_run(config)
    return Curve(
        steps=[int(record["step"]) for record in result.history],
        val_mse=[_mean_mse(record["val"]) for record in result.history],
        test_mse=_mean_mse(result.test),
    )


def budget_epochs(epochs: int) -> list[int]:
    """The three budgets reported: a quarter, half and all of ``epochs`` (1-based, distinct)."""
    return sorted({max(1, epochs // 4), max(1, epochs // 2), epochs})


def label_correlation(config: Config) -> float:
    """Pearson correlation of the two tasks' test labels in ``config``'s data."""
    bundle = load_bundle(config)
    y1, y2 = (bundle.test.targets[t].numpy() for t in ("y1", "y2"))
    return float(np.corrcoef(y1, y2)[0, 1])


def _cell(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def _tables(
    curves: dict[tuple[str, float], list[Curve]],
    archs: list[str],
    correlations: list[float],
    pearson: dict[float, list[float]],
    epochs: int,
) -> str:
    head = "| correlation p | label Pearson | metric | " + " | ".join(archs) + " |"
    lines = [head, "|---|---|---|" + "---|" * len(archs)]
    for p in correlations:
        first = [f"{p}", f"{statistics.mean(pearson[p]):.3f}"]
        rows = [
            (
                f"val MSE, step {curves[archs[0], p][0].steps[e - 1]}",
                lambda c, e=e: c.val_mse[e - 1],
            )
            for e in budget_epochs(epochs)
        ]
        rows += [
            ("val MSE, mean over epochs", lambda c: c.area),
            ("test MSE", lambda c: c.test_mse),
        ]
        for name, metric in rows:
            cells = [_cell([metric(c) for c in curves[a, p]]) for a in archs]
            lines.append("| " + " | ".join([*first, name, *cells]) + " |")
            first = ["", ""]
    if "hps" in archs and "mmoe" in archs:
        wins = ", ".join(
            f"{p}: {sum(m.area < h.area for m, h in zip(curves['mmoe', p], curves['hps', p]))}"
            f"/{len(curves['hps', p])}"
            for p in correlations
        )
        lines += ["", f"Seeds where MMoE's mean validation MSE is below HPS's (same data): {wins}."]
    return "\n".join(lines)


def seed_wins(runs: list[dict]) -> str:
    """Per correlation: on how many seeds each model's test MSE is below another's (same data)."""
    test = {(r["arch"], r["correlation"], r["seed"]): r["test_mse"] for r in runs}
    lines = []
    for p in sorted({r["correlation"] for r in runs}, reverse=True):
        seeds = sorted({r["seed"] for r in runs if r["correlation"] == p})
        counts = [
            f"{a} < {b} on {sum(test[a, p, s] < test[b, p, s] for s in seeds)}/{len(seeds)}"
            for a, b in (("mmoe", "hps"), ("mmoe", "omoe"), ("omoe", "hps"))
            if all((arch, p, s) in test for arch in (a, b) for s in seeds)
        ]
        lines.append(f"- correlation {p}: test MSE " + ", ".join(counts))
    return "\n".join(lines)


def _plot(
    curves: dict[tuple[str, float], list[Curve]],
    archs: list[str],
    correlations: list[float],
    path: Path,
    title: str,
) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(correlations), figsize=(3.2 * len(correlations), 3), sharey=True
    )
    for ax, p in zip(np.atleast_1d(axes), correlations):
        for arch in archs:
            runs = curves[arch, p]
            ax.plot(runs[0].steps, np.mean([c.val_mse for c in runs], axis=0), label=arch)
        ax.set_title(f"correlation {p}", fontsize=9)
        ax.set_xlabel("training step")
    np.atleast_1d(axes)[0].set_ylabel("validation MSE, mean of tasks")
    np.atleast_1d(axes)[0].legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=positive_int, default=5, help="how many seeds")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--n-samples", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--sines", default="reference")
    parser.add_argument("--num-sines", type=int, default=10)
    parser.add_argument("--n-features", type=int, default=N_FEATURES)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--correlations", default=",".join(map(str, CORRELATIONS)))
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--out", type=Path, default=RESULTS / "mmoe_correlation")
    parser.add_argument("--wins", type=Path, help="print seed_wins of a stored .json; no training")
    args = parser.parse_args()
    if args.wins is not None:
        print(seed_wins(json.loads(args.wins.read_text())))
        return
    correlations = [float(c) for c in args.correlations.split(",")]
    archs = [a.strip() for a in args.archs.split(",")]
    sizes = {
        "n_samples": args.n_samples,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "sines": args.sines,
        "num_sines": args.num_sines,
        "n_features": args.n_features,
        "scale": args.scale,
    }
    start = time.perf_counter()
    curves: dict[tuple[str, float], list[Curve]] = {}
    pearson: dict[float, list[float]] = {}
    runs = []
    for p in correlations:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            pearson.setdefault(p, []).append(
                label_correlation(mmoe_config("hps", p, seed, **sizes))
            )
            for arch in archs:
                curve = train_curve(mmoe_config(arch, p, seed, **sizes))
                curves.setdefault((arch, p), []).append(curve)
                runs.append({"arch": arch, "correlation": p, "seed": seed, **asdict(curve)})
                print(f"p={p} seed={seed} {arch}: area {curve.area:.3f} test {curve.test_mse:.3f}")
    minutes = (time.perf_counter() - start) / 60
    table = _tables(curves, archs, correlations, pearson, args.epochs)
    table += "\n\nSeeds where one model's test MSE is below another's:\n" + seed_wins(runs)
    command = (
        f"benchmarks/mmoe/correlation.py --seeds {args.seeds} --first-seed {args.first_seed} "
        f"--epochs {args.epochs} "
        f"--n-samples {args.n_samples} --batch-size {args.batch_size} --lr {args.lr} "
        f"--sines {args.sines} --num-sines {args.num_sines} --n-features {args.n_features} "
        f"--scale {args.scale} --correlations {args.correlations} --archs {args.archs}"
    )
    note = (
        f"MSE on the raw labels, mean of the two tasks; mean ± std over seeds "
        f"{args.first_seed}..{args.first_seed + args.seeds - 1}; {minutes:.1f} min. "
        f"Command: {command}"
    )
    print(f"\n{table}\n\n{note}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(f"{table}\n\n{note}\n")
    args.out.with_suffix(".json").write_text(json.dumps(runs, indent=1))
    title = f"mmoe_synthetic ({args.sines} sines, m = {args.num_sines}), mean of {args.seeds} seeds"
    _plot(curves, archs, correlations, args.out.with_suffix(".png"), title)


if __name__ == "__main__":
    main()
