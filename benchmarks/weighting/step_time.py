"""Step time of every weighting strategy divided by EW's, on a MultiMNIST-shaped LeNet step.

One step = forward, T cross-entropy losses, ``mtl_backward`` (called as the trainer calls
it: explicit parameter split, the trainer's engine watching the model), SGD step. Random
1×28×28 images (timing only), batch 256, HPS LeNet with T ten-class heads. torchjd's
``mtl_backward`` + ``jac_to_grad`` with its own aggregator is timed on the same model and batch
in the same process, on torchjd's own default paths: ``autojac.mtl_backward`` + ``jac_to_grad``
with the aggregator's defaults (UPGrad/DualProj with torchjd's default quadprog projector, from
the dev extra ``torchjd[quadprog-projector]``; a SciPy projector, noted after the table,
only if quadprog is missing, when their autogram rows are left out), and for every strategy
torchjd has a Gramian weighting for (``AUTOGRAM``) also the ``autogram.Engine`` route (Gramian
of the encoder's Jacobian, e.g. ``UPGradWeighting``, one backward of ``Σ wₜLₜ``), row
``NAME torchjd-autogram``. Strategies torchjd cannot run here are left blank.
After the table, "speed-up vs torchjd" gives, per strategy and T, the faster torchjd path's
time divided by mtlkit's exact step (target ≥ 1.5 at T ∈ {4, 8, 16}).

    .venv/bin/python benchmarks/weighting/step_time.py                  # full
    .venv/bin/python benchmarks/weighting/step_time.py --quick          # T ∈ {2, 16}, few reps
    .venv/bin/python benchmarks/weighting/step_time.py --tasks 2 4 --strategies ew mgda upgrad

``--seam NAME ...`` (default ``upgrad``) adds, per name, ``NAME custom loop`` —
``mtl_backward(losses, strategy, features=rep)`` with nothing else, as in the README (parameters
from the graph, the engine kept per model) — and ``NAME trainer.train_step`` — the real
:meth:`mtlkit.training.Trainer.train_step` on the same model and batch. Both should cost what
the ``NAME`` row costs: no per-step re-timing of the Jacobian method.

How it is timed: every configuration (EW, the loop, each strategy and mode, each torchjd path)
first runs ``--warmup`` steps; then ``--rounds`` rounds each time every configuration once, in a
freshly shuffled order (``--seed``). A ratio is taken *within* a round (both steps ran within
seconds of each other, under the same machine load) and reported as the median over the rounds;
the speed-up lines also give the spread, the smallest and largest per-round ratio. torch runs
with ``--threads`` threads (default 2), set before anything is timed. ``--clock cpu --threads 1``
times the CPU seconds of the one thread instead of wall seconds: on a machine loaded by other
processes that stays close to the idle machine's single-thread time.

    .venv/bin/python -u benchmarks/weighting/step_time.py --tasks 4 8 16 \
        --strategies mgda upgrad imtl_g aligned_mtl --rounds 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mtlkit.cli.threads import positive_int
from mtlkit.models.architectures.hps import HardParameterSharing
from mtlkit.models.encoders import LeNet
from mtlkit.tasks import Task
from mtlkit.training import Trainer, TrainingOptions
from mtlkit.weighting import GradientEngine, make_weighting, mtl_backward
from mtlkit.weighting.backward import engine_for, graph_leaves
from mtlkit.weighting.engine import jacobian_loop
from mtlkit.weighting.registry import AGGREGATIONS, WEIGHTINGS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from timing import per_round_ratios, time_rounds  # noqa: E402

# "sum" is T × "mean" and "mgda_ub" is the "mgda rep" row
GRADIENT = [n for n in AGGREGATIONS if n not in ("sum", "mgda_ub")]
LOSS = [n for n in WEIGHTINGS if n not in AGGREGATIONS and n not in ("ew", "fixed")]


try:
    import quadprog  # noqa: F401  (torchjd's default projector for UPGrad / DualProj)

    HAS_QUADPROG = True
except ImportError:
    HAS_QUADPROG = False

AUTOGRAM = {
    "mgda": ("MGDAWeighting", {}),
    "upgrad": ("UPGradWeighting", {}),
    "dualproj": ("DualProjWeighting", {}),
    "imtl_g": ("IMTLGWeighting", {}),
    "aligned_mtl": ("AlignedMTLWeighting", {}),
    "pcgrad": ("PCGradWeighting", {}),
    "gradvac": ("GradVacWeighting", {}),
    "cagrad": ("CAGradWeighting", {"c": 0.5}),
}
"""The strategies timed on torchjd's ``autogram.Engine`` route too: every one torchjd has a
Gramian weighting for (its usually faster path), with the options its aggregator row uses."""


def torchjd_aggregator(name: str, num_tasks: int):
    try:
        import torchjd.aggregation as ta
        from scipy.optimize import nnls
    except ImportError:
        return None

    class NNLSProjector:  # only if torchjd's default dual-cone backend (quadprog) is missing
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
        "upgrad": ta.UPGrad if HAS_QUADPROG else lambda: ta.UPGrad(projector=NNLSProjector()),
        "dualproj": (
            ta.DualProj if HAS_QUADPROG else lambda: ta.DualProj(projector=NNLSProjector())
        ),
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


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
"""``cpu``: CPU seconds of the timing thread, which other processes on a loaded machine barely
change (valid with ``--threads 1`` only: other threads' work is not counted)."""


def mtlkit_step(model, tasks, x, y, strategy, engine, optimizer):
    shared = list(model.shared_parameters())
    heads = list(model.task_specific_parameters())
    last = model.last_shared_parameters()

    def step():
        engine.new_step()
        rep = model.encode(x)
        losses = [t.compute_loss(model.heads[t.name](rep), y[t.name]) for t in tasks]
        optimizer.zero_grad()
        mtl_backward(
            losses,
            strategy,
            features=rep,
            shared_params=shared,
            task_params=heads,
            last_shared_params=last,
            engine=engine,
        )
        optimizer.step()
        if strategy.wants_losses_after_step:  # FAMO: the trainer's extra forward
            with torch.no_grad():
                rep = model.encode(x)
                after = [t.compute_loss(model.heads[t.name](rep), y[t.name]) for t in tasks]
            strategy.after_step(torch.stack(losses).detach(), torch.stack(after))

    return step


def custom_loop_step(model, tasks, x, y, strategy, optimizer):
    """The README's loop: ``mtl_backward(losses, strategy, features=rep)`` and nothing else."""

    def step():
        rep = model.encode(x)
        losses = [t.compute_loss(model.heads[t.name](rep), y[t.name]) for t in tasks]
        optimizer.zero_grad()
        mtl_backward(losses, strategy, features=rep)
        optimizer.step()

    return step


def trainer_step(model, tasks, x, y, strategy, engine):
    """``Trainer.train_step`` itself (sharing the benchmark's engine, so one recorder watches)."""
    trainer = Trainer(
        model,
        tasks,
        strategy,
        torch.optim.SGD(model.parameters(), lr=1e-4),
        options=TrainingOptions(progress=False),
        engine=engine,
    )
    return lambda: trainer.train_step(x, y)


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


def torchjd_autogram_step(model, tasks, x, y, weighting_name: str, optimizer):
    """torchjd's Gramian route: ``Engine(encoder).compute_gramian(L)``, ``w = weighting(G)``,
    ``L.backward(w)`` (the encoder gets ``Jᵀw``, each head ``wₜ∇Lₜ``). ``model`` must be a copy
    used by no other row: the engine hooks every forward of the modules it is given and fails
    on forward passes whose backward it never sees."""
    import torchjd.aggregation as ta
    from torchjd.autogram import Engine

    engine = Engine(model.encoder, batch_dim=None)  # one output per task, no batch dimension
    class_name, options = AUTOGRAM[weighting_name]
    weighting = getattr(ta, class_name)(**options)

    def step():
        rep = model.encode(x)
        losses = torch.stack([t.compute_loss(model.heads[t.name](rep), y[t.name]) for t in tasks])
        optimizer.zero_grad()
        gramian = engine.compute_gramian(losses)
        losses.backward(weighting(gramian))
        optimizer.step()

    return step


Rows = dict[str, dict[int, list[float]]]
"""Per configuration label, per T: its seconds per step, one entry per round."""


def faster_torchjd_path(rows: Rows, name: str, num_tasks: int) -> str | None:
    """The label of the torchjd path with the lower median time for ``name`` at T tasks."""
    paths = [
        label
        for label in (f"{name} torchjd", f"{name} torchjd-autogram")
        if num_tasks in rows.get(label, {})
    ]
    return min(paths, key=lambda label: statistics.median(rows[label][num_tasks]), default=None)


def print_speedups(rows: Rows, args: argparse.Namespace) -> None:
    """Per strategy torchjd has, per T: the faster torchjd path's time ÷ mtlkit's exact step,
    taken within each round; the median over rounds and the (smallest–largest) round."""
    lines = []
    for name in rows:
        cells, seen = [], False
        for t in args.tasks:
            path = faster_torchjd_path(rows, name, t)
            if path is None or t not in rows[name]:
                cells.append(" " * 18)
                continue
            seen = True
            ratios = per_round_ratios(rows[path][t], rows[name][t])
            tag = "a" if path.endswith("autogram") else "j"
            cell = f"{statistics.median(ratios):.2f}{tag} ({min(ratios):.2f}-{max(ratios):.2f})"
            cells.append(f"{cell:<18}")
        if seen:
            lines.append(name.ljust(28) + "".join(cells))
    if lines:
        print(
            "\nspeed-up vs torchjd: faster torchjd path ÷ mtlkit exact, per round; median "
            "(min-max)\nover the rounds; j = autojac mtl_backward + jac_to_grad, a = autogram "
            "Engine (target ≥ 1.5 at T ≥ 4)"
        )
        print("strategy".ljust(28) + "".join(f"T={t:<16}" for t in args.tasks))
        print("\n".join(lines), flush=True)


def print_table(rows: Rows, args: argparse.Namespace) -> None:
    tasks = [t for t in args.tasks if t in rows["ew"]]
    width = max(len(k) for k in rows) + 2
    header = "strategy".ljust(width) + "".join(f"T={t:<8}" for t in tasks)
    print()
    print(header)
    print("-" * len(header))
    for label, times in rows.items():
        cells = "".join(
            (
                f"{statistics.median(per_round_ratios(times[t], rows['ew'][t])):<10.2f}"
                if t in times
                else " " * 10
            )
            for t in tasks
        )
        print(label.ljust(width) + cells)
    rounds = len(next(iter(rows["ew"].values())))
    print(
        f"\nratio = step time ÷ EW's step time in the same round, median over {rounds} rounds "
        f"(each round times every configuration once, in shuffled order, after {args.warmup} "
        f"warm-up steps each); batch {args.batch}, torch threads {torch.get_num_threads()}, "
        f"{args.clock} clock",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--strategies", nargs="+", default=None)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--rounds",
        "--reps",
        type=positive_int,
        default=10,
        help="timed rounds (each times every config)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-round shuffle")
    parser.add_argument("--every", type=int, default=4, help="k of the every-k mode")
    parser.add_argument("--quick", action="store_true", help="T ∈ {2, 16}, 2 warmup, 5 rounds")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (pinned)")
    parser.add_argument(
        "--clock", choices=list(CLOCKS), default="wall", help="cpu: needs --threads 1"
    )
    parser.add_argument("--no-torchjd", action="store_true")
    parser.add_argument(
        "--method", default="auto", help="the engine's Jacobian method (auto, loop, layerwise, ...)"
    )
    parser.add_argument("--seam", nargs="*", default=["upgrad"], help="custom-loop/trainer rows")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.warmup, args.rounds = [2, 16], 2, 5
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu counts the timing thread only: use it with --threads 1")
    torch.set_num_threads(args.threads)
    names = args.strategies or (GRADIENT + LOSS)

    rows: Rows = {}
    for num_tasks in args.tasks:
        model, tasks, x, y = build(num_tasks, args.batch)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)

        engine = GradientEngine(method=args.method)
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
                if name in AUTOGRAM and (HAS_QUADPROG or name not in ("upgrad", "dualproj")):
                    twin, *_ = build(num_tasks, args.batch)  # same seed: the same weights
                    steps[f"{name} torchjd-autogram"] = torchjd_autogram_step(
                        twin,
                        tasks,
                        x,
                        y,
                        name,
                        torch.optim.SGD(twin.parameters(), lr=1e-4),
                    )
        for name in args.seam:
            steps[f"{name} custom loop"] = custom_loop_step(
                model, tasks, x, y, make_weighting(name, num_tasks), optimizer
            )
            steps[f"{name} trainer.train_step"] = trainer_step(
                model, tasks, x, y, make_weighting(name, num_tasks), engine
            )
        timed = time_rounds(
            steps,
            args.rounds,
            warmup=args.warmup,
            seed=args.seed + num_tasks,
            clock=CLOCKS[args.clock],
        )
        for label, seconds in timed.items():
            rows.setdefault(label, {})[num_tasks] = seconds
        chosen = sorted(
            {
                (f"{len(key[1])} parameter tensors" if all(key[2]) else "representation", method)
                for key, method in engine.choice.items()
            }
        )
        custom = engine_for(graph_leaves([model.encode(x[:1])]))  # the custom loop's engine
        print(
            f"T={num_tasks}: EW step {1000 * statistics.median(rows['ew'][num_tasks]):.1f} ms "
            f"(median of {args.rounds} rounds); engine's Jacobian "
            f"method: {chosen}; custom loop's: {sorted(set(custom.choice.values()))}",
            flush=True,
        )
        print_table(rows, args)  # so far: a cut-short run still leaves its numbers

    print_table(rows, args)
    if not HAS_QUADPROG:
        print("(quadprog missing: torchjd's UPGrad/DualProj ran with a scipy projector)")
    print_speedups(rows, args)


if __name__ == "__main__":
    main()
