"""Wall time of training with and without the relatedness recorders (same run, same seed).

    .venv/bin/python benchmarks/analysis/overhead.py
    .venv/bin/python benchmarks/analysis/overhead.py --dataset multimnist --every 1 10

Training on ``synthetic`` (7 tasks, MLP [32]) or ``multimnist`` (2 tasks, LeNet, 2,000 images),
HPS, 2 epochs; reported: seconds of ``fit`` without a callback, with an ``AffinityRecorder``
(lookahead affinity + gradient Gramian) and with a ``GradientRecorder`` alone, every N steps.
"""

from __future__ import annotations

import argparse
import time

from mtlkit.analysis import AffinityRecorder, GradientRecorder
from mtlkit.config import Config, from_dict
from mtlkit.data import make_loader
from mtlkit.training.checkpoint import seed_everything
from mtlkit.training.run import build_model, build_trainer, load_bundle

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


def timed(config: Config, bundle, callback) -> float:
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
    args = parser.parse_args()
    raw = CONFIGS[args.dataset] | {
        "training": {"epochs": args.epochs, "progress": False},
        "device": "cpu",
    }
    config = from_dict(Config, raw)
    bundle = load_bundle(config)
    timed(config, bundle, None)  # warm-up
    base = timed(config, bundle, None)
    print(f"{args.dataset}: {len(bundle.tasks)} tasks, fit without callback {base:.2f}s")
    print("| recorder | every | fit s | overhead |")
    print("|---|---|---|---|")
    for every in args.every:
        for name, cls in (("affinity", AffinityRecorder), ("gradients", GradientRecorder)):
            seconds = timed(config, bundle, cls(every=every))
            print(f"| {name} | {every} | {seconds:.2f} | {100 * (seconds / base - 1):+.0f}% |")


if __name__ == "__main__":
    main()
