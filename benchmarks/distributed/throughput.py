"""Training throughput (samples/s) of data-parallel mtlkit with 1 and 2 processes.

Each process is one rank of a gloo process group on 127.0.0.1 (spawned here, as torchrun
would), using ``--threads`` CPU threads; every rank trains on its shard of each global batch
through the real :class:`~mtlkit.training.Trainer` path (loss all-reduce, Jacobian all-reduce
for gradient strategies, gradient all-reduce). The global batch is the same for every world
size, so the ratio is the data-parallel speed-up of the same training.

    .venv/bin/python benchmarks/distributed/throughput.py [--strategies ew upgrad] [--steps 40]
"""

from __future__ import annotations

import argparse
import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mtlkit.cli.threads import positive_int


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _problem(n: int, features: int, num_tasks: int):
    from mtlkit.data import MultiTaskDataset
    from mtlkit.tasks import Task

    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, features, generator=g)
    w = torch.randn(features, num_tasks, generator=g)
    tasks = [Task(f"t{i}", "regression") for i in range(num_tasks)]
    targets = {t.name: torch.tanh(x @ w[:, i : i + 1]) for i, t in enumerate(tasks)}
    return tasks, MultiTaskDataset(x, targets)


def _worker(rank: int, world: int, port: int, args, queue) -> None:
    torch.set_num_threads(args.threads)
    from mtlkit.data import BatchLoader
    from mtlkit.distributed import DistContext
    from mtlkit.models import make_model
    from mtlkit.models.encoders import MLP
    from mtlkit.training import Trainer, TrainingOptions
    from mtlkit.weighting import make_weighting

    ctx = None
    if world > 1:
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
        )
        ctx = DistContext(rank, world, rank, "gloo", torch.device("cpu"), 120.0)
    tasks, data = _problem(args.batch_size * (args.steps + args.warmup), args.features, args.tasks)
    results = {}
    for name in args.strategies:
        torch.manual_seed(0)
        model = make_model("hps", lambda: MLP(args.features, hidden=tuple(args.hidden)), tasks)
        trainer = Trainer(
            model,
            tasks,
            make_weighting(name, len(tasks)),
            torch.optim.SGD(model.parameters(), lr=0.01),
            options=TrainingOptions(progress=False),
            distributed=ctx,
        )
        loader = BatchLoader(data, args.batch_size, seed=0, rank=rank, world_size=world)
        batches = list(loader)
        for inputs, targets in batches[: args.warmup]:
            trainer.train_step(inputs, targets)
        if ctx is not None:
            ctx.barrier()
        start = time.perf_counter()
        for inputs, targets in batches[args.warmup :]:
            trainer.train_step(inputs, targets)
        if ctx is not None:
            ctx.barrier()
        seconds = time.perf_counter() - start
        results[name] = (len(batches) - args.warmup) * args.batch_size / seconds
    if rank == 0:
        queue.put(results)
    if ctx is not None:
        dist.destroy_process_group()


def measure(world: int, args) -> dict[str, float]:
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    mp.start_processes(
        _worker,
        args=(world, _port(), args, queue),
        nprocs=world,
        join=True,
        start_method="spawn",
    )
    return queue.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=["ew", "upgrad"])
    parser.add_argument("--batch-size", type=int, default=256, help="global batch size")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per strategy")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 512])
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    parser.add_argument("--repeats", type=positive_int, default=2, help="best of this many runs")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    print(
        f"{os.cpu_count()} CPU cores, {args.threads} thread(s)/process, global batch "
        f"{args.batch_size}, MLP {args.features}->{args.hidden}, {args.tasks} tasks, gloo"
    )
    best: dict[int, dict[str, float]] = {}
    for _ in range(args.repeats):
        for world in (1, 2):
            found = measure(world, args)
            best[world] = {k: max(v, best.get(world, {}).get(k, 0.0)) for k, v in found.items()}
    print(f"{'strategy':<10} {'1 process':>12} {'2 processes':>12} {'ratio':>7}")
    for name in args.strategies:
        one, two = best[1][name], best[2][name]
        print(f"{name:<10} {one:>10.0f}/s {two:>10.0f}/s {two / one:>7.2f}")


if __name__ == "__main__":
    main()
