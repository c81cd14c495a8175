"""Ma et al. (KDD 2018), figure 4, as the paper measures it: the *training* loss of
shared-bottom (HPS), one-gate MoE (OMoE) and MMoE on the ``mmoe_synthetic`` pair of tasks at
correlations 1.0, 0.9, 0.5, 0.1, averaged over many runs.

Aligned with the paper: d = 100 inputs, m = 10 sine terms, noise variance 0.01; 8 experts of
one ReLU layer of 16, towers of one ReLU layer of 8, a shared bottom of one ReLU layer of 113
(the experts' weight count; ``paper_bottom_width``); gates on the raw input; Adam with the
learning rate chosen from {1e-4, 1e-3, 1e-2} (``--lr``, one per model); every run with its own
data (task directions, inputs, noise) and initialisation; the average training-loss curve.
Not given by the paper, chosen here: ``c``, ``αⱼ``, ``βⱼ`` (Google Research's generator:
``c = 1``, ``αⱼ = j``, ``βⱼ = (j − 1)²``), the batch size, the number of steps, and whether
data is re-drawn: a fresh batch every step (an endless stream: the training loss measures
fitting ability with no overfitting). The loss of a step is the mean of the two tasks' MSE on
its batch before the update, on raw labels; curves are averaged over windows of steps.

The runs of one model and correlation train together in one process: the models of
``mtlkit`` (built from ``correlation.mmoe_config``) are stacked with ``torch.func`` and
called through ``vmap``; each run keeps its own data, initialisation and Adam state (the
summed loss gives every run exactly its own gradient), so this is the same as training the
runs one by one (``tests/data/test_mmoe_training_loss.py`` checks it). Runs are paired: run
r has the same directions ``u₁, u₂``, inputs and initialisation for every model and correlation.
``--jobs`` trains (model, correlation) cells in that many processes, one thread each.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/mmoe/training_loss.py --runs 12 \
        --steps 3000 --jobs 2
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from correlation import ARCHS, CORRELATIONS, N_FEATURES, RESULTS, mmoe_config
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from mtlkit.cli.threads import positive_int
from mtlkit.data.builtin.mmoe_synthetic import sine_parameters, task_weights
from mtlkit.runs import load_bundle
from mtlkit.runs.build import build_model

TASKS = ("y1", "y2")


@dataclass(frozen=True)
class Stream:
    """An endless stream of batches of the synthetic pair, one independent task pair per run.

    Runs are laid out correlation-major: run ``c·R + r`` is seed r at ``correlations[c]``.
    ``directions`` is ``(C·R, d, 2)``: that run's task weights ``w₁, w₂`` (``task_weights``
    with ``np.random.default_rng(seed_r)``, as ``load_mmoe_synthetic(seed=seed_r)`` draws them).
    Seed r reads the same inputs at every correlation, so runs are paired across correlations.
    """

    directions: Tensor
    alpha: Tensor
    beta: Tensor
    noise: float
    num_correlations: int

    @classmethod
    def draw(
        cls,
        correlations: float | Sequence[float],
        seeds: list[int],
        n_features: int = N_FEATURES,
        scale: float = 1.0,
        num_sines: int = 10,
        sines: str = "reference",
        noise: float = 0.1,
        device: str | torch.device = "cpu",
    ) -> Stream:
        correlations = [correlations] if isinstance(correlations, float | int) else correlations
        weights = [
            np.stack(task_weights(p, n_features, scale, np.random.default_rng(s)), 1)
            for p in correlations
            for s in seeds
        ]
        alpha, beta = (
            torch.tensor(v, dtype=torch.float32, device=device)
            for v in sine_parameters(num_sines, sines)
        )
        directions = torch.tensor(np.stack(weights), dtype=torch.float32, device=device)
        return cls(directions, alpha, beta, noise, len(correlations))

    def batches(self, batch_size: int, steps: int, seed: int) -> Iterator[tuple[Tensor, Tensor]]:
        """``steps`` fresh batches: inputs ``(C·R, B, d)`` from ``N(0, I)`` (the same for a seed
        at every correlation) and labels ``(C·R, B, 2)`` of each run's pair: the scores
        ``s = wᵀx`` plus ``Σⱼ sin(αⱼ s + βⱼ)`` (``mmoe_label``) plus the noise."""
        device = self.directions.device
        generator = torch.Generator(device).manual_seed(seed)
        runs, n_features, _ = self.directions.shape
        seeds = runs // self.num_correlations
        for _ in range(steps):
            x = torch.randn(seeds, batch_size, n_features, generator=generator, device=device)
            x = x.repeat(self.num_correlations, 1, 1)
            score = torch.einsum("rbd,rdt->rbt", x, self.directions)
            labels = score + torch.sin(score[..., None] * self.alpha + self.beta).sum(-1)
            noise = torch.randn(seeds, batch_size, 2, generator=generator, device=device)
            yield x, labels + self.noise * noise.repeat(self.num_correlations, 1, 1)


class StackedRuns:
    """``R`` copies of one ``mtlkit`` model, run r initialised by ``torch.manual_seed(seed_r)``,
    their parameters stacked along a leading run axis and called with ``vmap``."""

    def __init__(self, models: list[torch.nn.Module], device: str | torch.device = "cpu") -> None:
        params, buffers = stack_module_state(models)
        self.params = {k: v.detach().to(device).requires_grad_() for k, v in params.items()}
        self.buffers = {k: v.to(device) for k, v in buffers.items()}
        self._base = copy.deepcopy(models[0]).to("meta")

    @classmethod
    def build(
        cls, arch: str, seeds: list[int], device: str | torch.device = "cpu", **sizes
    ) -> StackedRuns:
        config = mmoe_config(arch, 1.0, seeds[0], n_samples=10, **sizes)
        bundle = load_bundle(config)  # only its tasks and input shape are used
        models = []
        for seed in seeds:
            torch.manual_seed(seed)
            models.append(build_model(config, bundle))
        return cls(models, device)

    def _one(self, params: dict, buffers: dict, x: Tensor) -> Tensor:
        outputs = functional_call(self._base, (params, buffers), (x,))
        return torch.cat([outputs[t] for t in TASKS], dim=-1)

    def __call__(self, x: Tensor) -> Tensor:
        """Predictions ``(R, B, 2)`` of every run on its own inputs ``x`` ``(R, B, d)``."""
        return vmap(self._one)(self.params, self.buffers, x)


def training_curves(
    runs: StackedRuns, batches: Iterable[tuple[Tensor, Tensor]], lr: float, window: int = 100
) -> Tensor:
    """Train every run with Adam, one step per batch; the training loss ``(R, steps // window)``.

    The loss of a step is the mean over the two tasks of the batch MSE before the update;
    entry ``[r, k]`` is run r's mean over steps ``k·window .. (k+1)·window − 1`` (a last
    partial window is dropped).
    """
    optimizer = torch.optim.Adam(list(runs.params.values()), lr=lr)
    losses = []
    for x, y in batches:
        loss = ((runs(x) - y) ** 2).mean(dim=(1, 2))  # (R,): each run's own loss
        optimizer.zero_grad()
        loss.sum().backward()  # the sum gives every run exactly its own gradient
        optimizer.step()
        losses.append(loss.detach())
    steps = len(losses) - len(losses) % window
    curves = torch.stack(losses[:steps], dim=1).reshape(len(loss), -1, window).mean(dim=2)
    return curves.cpu()


def train_arch(
    arch: str,
    correlations: Sequence[float],
    lr: float,
    seeds: list[int],
    steps: int,
    batch_size: int,
    window: int,
    device: str = "cpu",
    bottom_width: int | None = None,
    **stream_options,
) -> dict[float, np.ndarray]:
    """Curves ``(R, steps // window)`` of ``arch``'s runs at each correlation, trained together.

    Every correlation reads the same inputs (data seed ``10_000 + seeds[0]``), and run r the
    same directions ``u₁, u₂`` and initialisation (seed r), so that differences between models
    or correlations are paired run by run.
    """
    if device == "cpu":
        torch.set_num_threads(1)
    stream = Stream.draw(correlations, seeds, device=device, **stream_options)
    batches = stream.batches(batch_size, steps, seed=10_000 + seeds[0])
    runs = StackedRuns.build(arch, seeds * len(correlations), device, bottom_width=bottom_width)
    curves = training_curves(runs, batches, lr, window).numpy()
    by_correlation = dict(zip(correlations, np.split(curves, len(correlations))))
    for p, curve in by_correlation.items():
        print(f"p={p} {arch} lr={lr}: last window {curve[:, -1].mean():.3f}", flush=True)
    return by_correlation


def _cell(values: list[float]) -> str:
    spread = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def report_steps(num_windows: int, window: int) -> list[int]:
    """Window indices reported: the windows ending at a quarter, half and all of the steps."""
    return sorted({max(1, num_windows * k // 4) - 1 for k in (1, 2, 4)})


def tables(curves: dict[tuple[str, float], np.ndarray], window: int) -> str:
    """Mean ± standard error over runs of the training loss at three points and over the curve;
    per correlation, on how many runs one model's mean curve is below another's; and each
    model's rise from the highest to the lowest correlation."""
    archs = sorted({a for a, _ in curves}, key=ARCHS.index)
    correlations = sorted({p for _, p in curves}, reverse=True)
    num_windows = next(iter(curves.values())).shape[1]
    lines = ["| correlation p | training loss | " + " | ".join(archs) + " |"]
    lines.append("|---|---|" + "---|" * len(archs))
    for p in correlations:
        first = f"{p}"
        for k in report_steps(num_windows, window):
            label = f"steps {k * window + 1}–{(k + 1) * window}"
            cells = [_cell(curves[a, p][:, k].tolist()) for a in archs]
            lines.append(f"| {first} | {label} | " + " | ".join(cells) + " |")
            first = ""
        cells = [_cell(curves[a, p].mean(axis=1).tolist()) for a in archs]
        lines.append("|  | mean over the curve | " + " | ".join(cells) + " |")
    if len(archs) > 1:
        lines += ["", "Runs where the first model's mean training loss is below the second's:"]
    for p in correlations if len(archs) > 1 else ():
        counts = [
            f"{a} < {b} on {int((curves[a, p].mean(1) < curves[b, p].mean(1)).sum())}"
            f"/{curves[a, p].shape[0]}"
            for a, b in (("mmoe", "hps"), ("mmoe", "omoe"), ("omoe", "hps"))
            if (a, p) in curves and (b, p) in curves
        ]
        lines.append(f"- correlation {p}: " + ", ".join(counts))
    high, low = correlations[0], correlations[-1]
    lines += [
        "",
        f"Rise of each run's training loss from correlation {high} to {low} (same inputs, "
        "directions and initialisation), last window / mean over the curve:",
    ]
    for a in archs:
        rise = curves[a, low] - curves[a, high]
        lines.append(f"- {a}: {_cell(rise[:, -1].tolist())} / {_cell(rise.mean(1).tolist())}")
    return "\n".join(lines)


def _plot(curves: dict[tuple[str, float], np.ndarray], window: int, path: Path, title: str):
    """Mean curves on a log scale: top row one panel per model (a line per correlation, figure
    4's layout), bottom row one panel per correlation (a line per model)."""
    import matplotlib.pyplot as plt

    archs = sorted({a for a, _ in curves}, key=ARCHS.index)
    correlations = sorted({p for _, p in curves}, reverse=True)
    columns = max(len(archs), len(correlations))
    fig, axes = plt.subplots(2, columns, figsize=(3.2 * columns, 5.6), sharey=True, squeeze=False)
    panels = [
        (0, k, a, [(f"correlation {p}", (a, p)) for p in correlations]) for k, a in enumerate(archs)
    ]
    panels += [
        (1, k, f"correlation {p}", [(a, (a, p)) for a in archs]) for k, p in enumerate(correlations)
    ]
    for row, column, name, lines in panels:
        ax = axes[row, column]
        for label, cell in lines:
            mean = curves[cell].mean(axis=0)
            ax.plot(window * (np.arange(len(mean)) + 1), mean, label=label)
        ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
        if row == 1:
            ax.set_xlabel("training step")
    for ax in axes[:, 0]:
        ax.set_ylabel("training loss (mean task MSE)")
    for ax in axes.flat:
        if not ax.has_data():
            ax.set_visible(False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _learning_rates(text: str, archs: list[str], parser: argparse.ArgumentParser) -> dict:
    """``--lr``: ``arch=rate`` pairs, one for every model trained."""
    try:
        lrs = {k.strip(): float(v) for k, v in (item.split("=") for item in text.split(","))}
    except ValueError:
        parser.error(f"--lr: expected arch=rate pairs separated by commas, got {text!r}")
    missing = [a for a in archs if a not in lrs]
    if missing:
        parser.error(f"--lr: no learning rate for {', '.join(missing)} (got {text!r})")
    return lrs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=positive_int, default=10, help="runs per model and correlation"
    )
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=positive_int, default=3000)
    parser.add_argument("--window", type=positive_int, default=100, help="steps averaged per point")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument(
        "--lr", default="hps=1e-2,omoe=1e-2,mmoe=1e-2", help="Adam learning rate per model"
    )
    parser.add_argument("--sines", default="reference")
    parser.add_argument("--num-sines", type=int, default=10)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--correlations", default=",".join(map(str, CORRELATIONS)))
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--jobs", type=int, default=1, help="processes (one model each)")
    parser.add_argument("--device", default="cpu", help="cpu (one thread per job) or cuda")
    parser.add_argument(
        "--bottom-width",
        type=positive_int,
        help="shared bottom's units (default: the experts' weights)",
    )
    parser.add_argument(
        "--out", type=Path, help="results/mmoe_training_loss by default; with --report, the JSON's"
    )
    parser.add_argument("--no-plot", dest="plot", action="store_false", help="write no <out>.png")
    parser.add_argument(
        "--report", type=Path, metavar="JSON", help="only re-write the tables and plot of a run"
    )
    args = parser.parse_args()
    if args.report:
        stored = json.loads(args.report.read_text())
        if not isinstance(stored, dict) or "cells" not in stored:
            parser.error(f"--report: {args.report} is not a run this script wrote (no 'cells')")
        report(stored, args.out or args.report.with_suffix(""), plot=args.plot)
        return
    args.out = args.out or RESULTS / "mmoe_training_loss"
    archs = [a.strip() for a in args.archs.split(",")]
    lrs = _learning_rates(args.lr, archs, parser)
    correlations = [float(c) for c in args.correlations.split(",")]
    seeds = list(range(args.first_seed, args.first_seed + args.runs))
    options = {
        "seeds": seeds, "steps": args.steps, "batch_size": args.batch_size,
        "window": args.window, "scale": args.scale, "num_sines": args.num_sines,
        "sines": args.sines, "noise": args.noise, "device": args.device,
        "bottom_width": args.bottom_width,
    }  # fmt: skip
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {a: pool.submit(train_arch, a, correlations, lrs[a], **options) for a in archs}
        curves = {(a, p): c for a in archs for p, c in futures[a].result().items()}
    minutes = (time.perf_counter() - start) / 60
    command = (
        f"benchmarks/mmoe/training_loss.py --runs {args.runs} --first-seed {args.first_seed} "
        f"--steps {args.steps} --window {args.window} --batch-size {args.batch_size} "
        f"--lr {args.lr} --sines {args.sines} --num-sines {args.num_sines} "
        f"--scale {args.scale} --noise {args.noise} --correlations {args.correlations} "
        f"--archs {args.archs} --jobs {args.jobs} --device {args.device} --out {args.out}"
        + (f" --bottom-width {args.bottom_width}" if args.bottom_width else "")
    )
    note = (
        f"Training loss on raw labels (mean of the two tasks' MSE on each step's fresh batch), "
        f"averaged over windows of {args.window} steps; mean ± standard error over runs "
        f"(seeds {seeds[0]}..{seeds[-1]}); {minutes:.1f} min. Command: {command}"
    )
    title = (
        f"mmoe_synthetic training loss ({args.sines} sines, m = {args.num_sines}, "
        f"c = {args.scale}, lr {args.lr}), mean of {args.runs} runs"
    )
    stored = {
        "note": note,
        "title": title,
        "window": args.window,
        "cells": [
            {"arch": a, "correlation": p, "curves": c.round(5).tolist()}
            for (a, p), c in curves.items()
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(stored))
    report(stored, args.out, plot=args.plot)


def report(stored: dict, out: Path, plot: bool = True) -> None:
    """Print and write ``<out>.md`` (tables and note) and, with ``plot``, ``<out>.png``."""
    curves = {(c["arch"], c["correlation"]): np.array(c["curves"]) for c in stored["cells"]}
    table = tables(curves, stored["window"])
    print(f"\n{table}\n\n{stored['note']}", flush=True)
    out.with_suffix(".md").write_text(f"{table}\n\n{stored['note']}\n")
    if plot:
        _plot(curves, stored["window"], out.with_suffix(".png"), stored["title"])


if __name__ == "__main__":
    main()
