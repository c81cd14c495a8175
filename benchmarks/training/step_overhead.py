"""Overhead of :meth:`mtlkit.training.Trainer.train_step` over a plain hand-written torch loop.

Both sides train the same model (two identical copies, same initial weights) on the same batch
with equal weighting (the plain sum of the task losses) and Adam::

    out = model(x)
    loss = Σₜ Lₜ(outₜ, yₜ)          # MSE for the regression tasks, BCE-with-logits for the binary
    optimizer.zero_grad(set_to_none=True); loss.backward(); optimizer.step()

against ``trainer.train_step(x, y)`` (strategy ``ew``, the trainer's defaults otherwise). Two
tabular models, both hard parameter sharing (HPS) over a small MLP encoder:

``dense``     ``--features`` standardized numbers in, one linear head per task;
``embedded``  the same behind a :class:`~mtlkit.models.inputs.TabularInput` reading
              ``--codes`` code columns (``--categories`` rows per table, ``--dim`` wide).

The batch lies on ``--device`` before timing (the trainer's move of it is then a no-op); with
``--batch-on host`` it lies in CPU memory and both sides move it to the device every step.
Before timing, the two copies' parameters are checked to be equal after ``--warmup`` steps of
each (same work on both sides, up to float rounding).

How it is timed: ``--rounds`` rounds; each round times every configuration once, in a freshly
shuffled order (``--seed``), each for ``--steps`` consecutive steps between two clock reads, with
``torch.cuda.synchronize()`` before both reads on CUDA (a step that waits for the device, a
host sync, shows up as lost overlap, as it does in training). The ratio trainer / plain is taken
within a round (same machine load) and reported as the median over rounds, with the smallest
and largest per-round ratio. torch runs with ``--threads`` intra-op threads and one inter-op
thread, set before anything runs; ``--cpus 0 1`` also pins the process to those cores.

On CUDA it then counts the host syncs per step of each configuration (``--sync-audit STEPS``,
with ``torch.cuda.set_sync_debug_mode``) and prints where in Python they happen. The task losses
themselves read nothing (masked means, ``TaskKind.masked_loss``; a custom ``Task.loss`` would
select the labelled rows, a sync per task); with the batch already on the device the trainer
counts each task's labels there (``label_counts``, a read per task per step), while with
``--batch-on host`` it counts them on the CPU batch before the move.

    .venv/bin/python benchmarks/training/step_overhead.py                    # CPU, ~10 s
    .venv/bin/python benchmarks/training/step_overhead.py --device cuda      # same on a GPU
    .venv/bin/python benchmarks/training/step_overhead.py --device cuda --batch-on host
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlkit.cli.threads import positive_int
from mtlkit.data import EmbeddingSpec
from mtlkit.models import make_encoder, make_model
from mtlkit.models.inputs import TabularInput, WithInputLayer
from mtlkit.tasks import Task
from mtlkit.training import Trainer, TrainingOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from timing import per_round_ratios, time_rounds  # noqa: E402

Batch = tuple[Tensor, dict[str, Tensor]]


def make_tasks(num_tasks: int) -> list[Task]:
    """Regression and binary tasks, alternating."""
    kinds = ("regression", "binary")
    return [Task(f"{kinds[i % 2][0]}{i}", kinds[i % 2]) for i in range(num_tasks)]


def build_model(name: str, tasks: list[Task], args: argparse.Namespace) -> nn.Module:
    """HPS over an MLP encoder; ``embedded``: behind a :class:`TabularInput`."""
    if name == "dense":
        encoder = lambda: make_encoder("mlp", (args.features,), hidden=args.hidden)  # noqa: E731
        return make_model("hps", encoder, tasks)
    specs = [EmbeddingSpec(f"c{i}", args.categories, args.dim) for i in range(args.codes)]
    layer = TabularInput(args.features, specs)
    encoder = lambda: make_encoder("mlp", (layer.out_features,), hidden=args.hidden)  # noqa: E731
    return WithInputLayer(make_model("hps", encoder, tasks), layer)


def make_batch(name: str, tasks: list[Task], args: argparse.Namespace) -> Batch:
    x = torch.randn(args.batch, args.features)
    if name == "embedded":
        codes = torch.randint(0, args.categories, (args.batch, args.codes)).float()
        x = torch.cat([x, codes], dim=1)
    y = {
        t.name: torch.randn(args.batch)
        if t.kind == "regression"
        else torch.randint(0, 2, (args.batch,)).float()
        for t in tasks
    }
    return x, y


def plain_loss(tasks: list[Task], outputs: dict[str, Tensor], targets: dict[str, Tensor]) -> Tensor:
    """Σₜ Lₜ with torch's own losses (no label masks: every row is labelled here)."""
    total = torch.zeros((), device=next(iter(outputs.values())).device)
    for task in tasks:
        prediction, target = outputs[task.name].reshape(-1), targets[task.name]
        if task.kind == "regression":
            total = total + F.mse_loss(prediction, target)
        else:
            total = total + F.binary_cross_entropy_with_logits(prediction, target)
    return total


def to_device(batch: Batch, device: torch.device) -> Batch:
    x, y = batch
    return x.to(device, non_blocking=True), {
        k: v.to(device, non_blocking=True) for k, v in y.items()
    }


def plain_step(
    model: nn.Module, tasks: list[Task], batch: Batch, device: torch.device, lr: float
) -> Callable[[], None]:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def step() -> None:
        x, y = to_device(batch, device)
        model.train()
        loss = plain_loss(tasks, model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def trainer_step(
    model: nn.Module, tasks: list[Task], batch: Batch, device: torch.device, lr: float
) -> Callable[[], None]:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    trainer = Trainer(
        model, tasks, optimizer=optimizer, options=TrainingOptions(progress=False), device=device
    )
    x, y = batch
    return lambda: trainer.train_step(x, y)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_same_work(plain: nn.Module, trained: nn.Module, name: str) -> None:
    """After the warm-up steps both copies must hold the same parameters (same updates)."""
    with torch.no_grad():
        worst = max(
            float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))
            for a, b in zip(plain.parameters(), trained.parameters(), strict=True)
        )
    if worst > 1e-3:
        raise RuntimeError(
            f"{name}: plain loop and trainer diverged (relative difference {worst:.2g})"
        )


def count_host_syncs(step: Callable[[], None], steps: int) -> tuple[float, Counter]:
    """Host syncs per step on CUDA (``torch.cuda.set_sync_debug_mode``), and where in Python
    they happen (``file:line`` of the synchronizing call, counted over ``steps`` steps)."""
    torch.cuda.synchronize()
    where: Counter = Counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(steps):
                step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    for w in caught:
        if "synchroniz" in str(w.message):
            where[f"{os.path.relpath(w.filename)}:{w.lineno}"] += 1
    return sum(where.values()) / steps, where


def print_sync_audit(steps: dict[str, Callable[[], None]], count: int) -> None:
    print(f"host syncs per step (torch.cuda.set_sync_debug_mode, {count} steps each):")
    for label, step in steps.items():
        per_step, where = count_host_syncs(step, count)
        print(f"  {label:<18} {per_step:6.2f}")
        for location, n in where.most_common():
            print(f"      {n / count:6.2f}  {location}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batch-on", choices=("device", "host"), default="device")
    parser.add_argument(
        "--models", nargs="+", choices=("dense", "embedded"), default=["dense", "embedded"]
    )
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--codes", type=int, default=4, help="code columns (embedded)")
    parser.add_argument("--categories", type=int, default=1000, help="rows per embedding table")
    parser.add_argument("--dim", type=int, default=8, help="embedding width")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=20, help="steps of each before timing")
    parser.add_argument("--rounds", type=positive_int, default=30)
    parser.add_argument("--steps", type=int, default=20, help="steps timed together per round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cpus", type=int, nargs="+", help="pin the process to these cores")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sync-audit",
        type=int,
        default=10,
        metavar="STEPS",
        help="on cuda: count the host syncs of this many steps of each configuration (0: off)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.cpus:
        os.sched_setaffinity(0, args.cpus)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    tasks = make_tasks(args.tasks)
    steps: dict[str, Callable[[], None]] = {}
    for name in args.models:
        torch.manual_seed(args.seed)
        model = build_model(name, tasks, args).to(device)
        twin = copy.deepcopy(model)
        batch = make_batch(name, tasks, args)
        if args.batch_on == "device":
            batch = to_device(batch, device)
        plain, trainer = (
            plain_step(model, tasks, batch, device, args.lr),
            trainer_step(twin, tasks, batch, device, args.lr),
        )
        for _ in range(args.warmup):
            plain()
            trainer()
        check_same_work(model, twin, name)
        steps[f"{name} plain"], steps[f"{name} trainer"] = plain, trainer
    times = time_rounds(
        steps,
        args.rounds,
        steps_per_round=args.steps,
        seed=args.seed,
        sync=lambda: synchronize(device),
    )

    where = f"{device}" + (
        f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    )
    print(
        f"device {where}, batch on {args.batch_on}, torch {torch.__version__}, "
        f"{args.threads} thread(s), "
        f"T={args.tasks}, batch {args.batch}, hidden {args.hidden}, "
        f"{args.rounds} rounds x {args.steps} steps (median per step)"
    )
    header = ("model", "plain ms", "trainer ms", "trainer/plain", "min", "max")
    print("{:<10} {:>9} {:>11} {:>14} {:>6} {:>6}".format(*header))
    for name in args.models:
        plain, trained = times[f"{name} plain"], times[f"{name} trainer"]
        ratios = per_round_ratios(trained, plain)
        print(
            f"{name:<10} {1e3 * statistics.median(plain):>9.3f} "
            f"{1e3 * statistics.median(trained):>11.3f} "
            f"{statistics.median(ratios):>14.2f} {min(ratios):>6.2f} {max(ratios):>6.2f}"
        )
    if device.type == "cuda" and args.sync_audit:
        print_sync_audit(steps, args.sync_audit)


if __name__ == "__main__":
    main()
