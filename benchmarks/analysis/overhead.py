"""Wall time of training with and without the relatedness recorders (same run, same seed).

    .venv/bin/python benchmarks/analysis/overhead.py
    .venv/bin/python benchmarks/analysis/overhead.py --dataset multimnist --every 1 10

Training on ``synthetic`` (7 tasks, MLP [32]) or ``multimnist`` (2 tasks, LeNet, 2,000 images),
HPS, 2 epochs, one CPU thread (``--threads``); reported: seconds of ``fit`` without a callback,
with an ``AffinityRecorder`` (lookahead affinity + gradient Gramian) and with a
``GradientRecorder`` alone, every N steps; each the fastest of ``--repeats``
runs, taken in round robin.
"""

from __future__ import annotations

import argparse
import functools
import time

import torch

from mtlkit.analysis import AffinityRecorder, GradientRecorder
from mtlkit.cli.threads import positive_int
from mtlkit.config import Config, from_dict
from mtlkit.data import make_loader
from mtlkit.runs import build_model, build_trainer, load_bundle
from mtlkit.training.checkpoint import seed_everything

CONFIGS = {
    "synthetic": {
        "data": {
            "dataset": "synthetic",
            "options": {"num_tasks": 7, "clusters": [0, 0, 0, 1, 1, 1, 2], "n_samples": 2000},
            "batch_size": 64,
        },
        "model": {"encoder_options": {"hidden": [32]}},
    },
    "multimnist": {
        "data": {
            "dataset": "multimnist",
            "options": {"n_train": 2000, "n_val": 200, "n_test": 200},
            "batch_size": 128,
        },
    },
}


def fit_seconds(config: Config, bundle, make_callback) -> float:
    """Seconds of one ``fit`` from scratch, with a fresh callback from ``make_callback``."""
    callback = make_callback() if make_callback is not None else None
    seed_everything(config.seed)
    model = build_model(config, bundle)
    trainer = build_trainer(config, model, bundle)
    if callback is not None:
        trainer.step_callbacks.append(callback)
    loader = make_loader(bundle.train, config.data.batch_size, seed=config.seed)
    start = time.perf_counter()
    trainer.fit(loader, epochs=config.training.epochs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="synthetic", choices=list(CONFIGS))
    parser.add_argument("--every", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=positive_int, default=3, help="runs per row; the fastest")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    raw = CONFIGS[args.dataset] | {
        "training": {"epochs": args.epochs, "progress": False},
        "device": "cpu",
    }
    config = from_dict(Config, raw)
    bundle = load_bundle(config)
    fit_seconds(config, bundle, None)  # warm-up
    rows = [("none", 0, None)] + [
        (name, every, functools.partial(cls, every=every))
        for every in args.every
        for name, cls in (("affinity", AffinityRecorder), ("gradients", GradientRecorder))
    ]
    # round robin, so that a slow spell of a shared machine does not hit one row only
    best = [float("inf")] * len(rows)
    for _ in range(args.repeats):
        for i, (_, _, make) in enumerate(rows):
            best[i] = min(best[i], fit_seconds(config, bundle, make))
    base = best[0]
    print(
        f"{args.dataset}: {len(bundle.tasks)} tasks, {args.epochs} epochs, {args.threads} "
        f"thread(s), fastest of {args.repeats} runs; fit without callback {base:.2f}s"
    )
    print("| recorder | every | fit s | overhead |")
    print("|---|---|---|---|")
    for (name, every, _), seconds in zip(rows[1:], best[1:], strict=True):
        print(f"| {name} | {every} | {seconds:.2f} | {100 * (seconds / base - 1):+.0f}% |")


if __name__ == "__main__":
    main()
