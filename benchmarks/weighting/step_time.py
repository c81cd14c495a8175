"""Step time of every weighting strategy divided by EW's, on a MultiMNIST-shaped LeNet step.

One step = forward, T cross-entropy losses, ``strategy.backward`` (through the same call
contract as the trainer), SGD step. Random 1×28×28 images (timing only), batch 256, HPS LeNet
with T ten-class heads. torchjd's ``mtl_backward`` + ``jac_to_grad`` with its own aggregator is
timed on the same model and batch in the same process (UPGrad/DualProj with a SciPy projector,
since torchjd's default needs quadprog; strategies torchjd cannot run here are left blank).

    .venv/bin/python benchmarks/weighting/step_time.py                  # full
    .venv/bin/python benchmarks/weighting/step_time.py --quick          # T ∈ {2, 16}, few reps
    .venv/bin/python benchmarks/weighting/step_time.py --tasks 2 4 --strategies ew mgda upgrad

Reported: median over ``--reps`` timed steps (after ``--warmup``) ÷ EW's median, per T. The
steps are timed in interleaved rounds (EW, loop, every strategy, then again), so a change of
machine load during the run shifts all of them alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from mtlkit.models.architectures.hps import HardParameterSharing
from mtlkit.models.encoders import LeNet
from mtlkit.tasks import Task
from mtlkit.weighting import GradientEngine, StepContext, make_weighting
from mtlkit.weighting.engine import jacobian_loop
from mtlkit.weighting.registry import AGGREGATIONS, WEIGHTINGS

# "sum" is T × "mean" and "mgda_ub" is the "mgda rep" row
GRADIENT = [n for n in AGGREGATIONS if n not in ("sum", "mgda_ub")]
LOSS = [n for n in WEIGHTINGS if n not in AGGREGATIONS and n not in ("ew", "fixed")]


def torchjd_aggregator(name: str, num_tasks: int):
    try:
        import torchjd.aggregation as ta
        from scipy.optimize import nnls
    except ImportError:
        return None

    class NNLSProjector:  # torchjd's default dual-cone backend (quadprog) is not installed
        def __call__(self, U, G):
            g = G.detach().double().numpy()
            lam, vec = np.linalg.eigh(0.5 * (g + g.T))
            a = np.sqrt(np.clip(lam, 0, None))[:, None] * vec.T
            rows = np.atleast_2d(U.detach().double().numpy())
            out = np.stack([u + nnls(a, -a @ u)[0] for u in rows]).reshape(U.shape)
            return torch.as_tensor(out, dtype=G.dtype)

    factories = {
        "mean": ta.Mean,
        "sum": ta.Sum,
        "mgda": ta.MGDA,
        "pcgrad": ta.PCGrad,
        "gradvac": ta.GradVac,
        "graddrop": ta.GradDrop,
        "imtl_g": ta.IMTLG,
        "aligned_mtl": ta.AlignedMTL,
        "upgrad": lambda: ta.UPGrad(projector=NNLSProjector()),
        "dualproj": lambda: ta.DualProj(projector=NNLSProjector()),
        "cagrad": lambda: ta.CAGrad(c=0.5),
        "nash_mtl": lambda: ta.NashMTL(n_tasks=num_tasks),
    }
    if name not in factories:
        return None
    try:
        return factories[name]()
    except ImportError:
        return None


def build(num_tasks: int, batch: int, seed: int = 0):
    torch.manual_seed(seed)
    tasks = [Task(f"t{i}", "multiclass", num_outputs=10) for i in range(num_tasks)]
    model = HardParameterSharing(LeNet(), tasks)
    x = torch.randn(batch, 1, 28, 28)
    y = {t.name: torch.randint(0, 10, (batch,)) for t in tasks}
    return model, tasks, x, y


def time_interleaved(steps: dict[str, Callable[[], None]], warmup: int, reps: int) -> dict:
    """Median time of each step, timed in rounds (one step of each per round) so that a change
    of machine load over the run affects every step alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {label: [] for label in steps}
    for _ in range(reps):
        for label, step in steps.items():
            start = time.perf_counter()
            step()
            times[label].append(time.perf_counter() - start)
    return {label: statistics.median(t) for label, t in times.items()}


def mtlkit_step(model, tasks, x, y, strategy, engine, optimizer):
    def step():
        engine.new_step()
        rep = model.encode(x)
        losses = engine.stack([t.compute_loss(model.heads[t.name](rep), y[t.name]) for t in tasks])
        optimizer.zero_grad()
        ctx = StepContext(
            list(model.shared_parameters()),
            list(model.task_specific_parameters()),
            engine=engine,
            representation=rep,
        )
        strategy.backward(losses, ctx)
        optimizer.step()

    return step


def loop_step(model, tasks, x, y, optimizer):
    """Reference: a plain per-task autograd.grad loop, then the gradient of the sum."""
    shared = list(model.shared_parameters())

    def step():
        rep = model.encode(x)
        losses = [t.compute_loss(model.heads[t.name](rep), y[t.name]) for t in tasks]
        optimizer.zero_grad()
        jac = jacobian_loop(losses, shared)  # autograd.grad of each task's own loss tensor
        GradientEngine().accumulate(jac.sum(0), shared)
        heads = list(model.task_specific_parameters())
        torch.autograd.backward(sum(losses), inputs=heads)
        optimizer.step()

    return step


def torchjd_step(model, tasks, x, y, aggregator, optimizer):
    from torchjd.autojac import jac_to_grad, mtl_backward

    shared = list(model.shared_parameters())

    def step():
        rep = model.encode(x)
        losses = [t.compute_loss(model.heads[t.name](rep), y[t.name]) for t in tasks]
        optimizer.zero_grad()
        mtl_backward(losses, features=rep)
        jac_to_grad(shared, aggregator)
        optimizer.step()

    return step


def print_table(rows: dict[str, dict[int, float]], args: argparse.Namespace) -> None:
    tasks = [t for t in args.tasks if t in rows["ew"]]
    width = max(len(k) for k in rows) + 2
    header = "strategy".ljust(width) + "".join(f"T={t:<8}" for t in tasks)
    print()
    print(header)
    print("-" * len(header))
    for label, times in rows.items():
        cells = "".join(
            (f"{times[t] / rows['ew'][t]:<10.2f}" if t in times else " " * 10) for t in tasks
        )
        print(label.ljust(width) + cells)
    print(
        f"\nratios = median step time / EW median step time; batch {args.batch}, "
        f"{args.reps} reps after {args.warmup} warmup, torch threads {torch.get_num_threads()}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--strategies", nargs="+", default=None)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--every", type=int, default=4, help="k of the every-k mode")
    parser.add_argument("--quick", action="store_true", help="T ∈ {2, 16}, 2 warmup, 5 reps")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-torchjd", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.warmup, args.reps = [2, 16], 2, 5
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.strategies or (GRADIENT + LOSS)

    rows: dict[str, dict[int, float]] = {}
    for num_tasks in args.tasks:
        model, tasks, x, y = build(num_tasks, args.batch)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)

        engine = GradientEngine()
        engine.watch(model, list(model.shared_parameters()))  # as the trainer does
        probe = make_weighting("mgda", num_tasks)  # let the engine measure and choose first
        probe_step = mtlkit_step(model, tasks, x, y, probe, engine, optimizer)
        for _ in range(engine.probes + 1):
            probe_step()
        ew = make_weighting("ew", num_tasks)
        steps = {
            "ew": mtlkit_step(model, tasks, x, y, ew, engine, optimizer),
            "[autograd.grad loop + sum]": loop_step(model, tasks, x, y, optimizer),
        }
        for name in names:
            if name == "ew":
                continue
            variants = [("", {})]
            if name in GRADIENT:
                variants += [
                    (" rep", {"mode": "representation"}),
                    (f" every{args.every}", {"every": args.every}),
                ]
            for suffix, opts in variants:
                strategy = make_weighting(name, num_tasks, **opts)
                steps[name + suffix] = mtlkit_step(model, tasks, x, y, strategy, engine, optimizer)
            if not args.no_torchjd:
                aggregator = torchjd_aggregator(name, num_tasks)
                if aggregator is not None:
                    steps[f"{name} torchjd"] = torchjd_step(
                        model, tasks, x, y, aggregator, optimizer
                    )
        for label, seconds in time_interleaved(steps, args.warmup, args.reps).items():
            rows.setdefault(label, {})[num_tasks] = seconds
        chosen = sorted(
            {
                (f"{len(key[1])} parameter tensors" if all(key[2]) else "representation", method)
                for key, method in engine.choice.items()
            }
        )
        print(
            f"T={num_tasks}: EW step {1000 * rows['ew'][num_tasks]:.1f} ms; engine's Jacobian "
            f"method: {chosen}",
            flush=True,
        )
        print_table(rows, args)  # so far: a cut-short run still leaves its numbers

    print_table(rows, args)


if __name__ == "__main__":
    main()
