"""Two processes on the two halves of every batch = one process on the whole batch."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from dist_helpers import STRATEGIES, fit, free_port

from mtlkit.distributed import DistContext

WORLD = 2


def _worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    ctx = DistContext(rank, world, rank, "gloo", torch.device("cpu"), 60.0)
    results = {}
    for name, options in STRATEGIES:
        results[repr((name, options))] = fit(name, options, distributed=ctx)
    with open(f"{out}.{rank}", "wb") as handle:
        pickle.dump(results, handle)
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("dist") / "results")
    mp.start_processes(
        _worker, args=(WORLD, free_port(), out), nprocs=WORLD, join=True, start_method="spawn"
    )
    results = []
    for rank in range(WORLD):
        with open(f"{out}.{rank}", "rb") as handle:
            results.append(pickle.load(handle))
    return results


@pytest.mark.parametrize(("name", "options"), STRATEGIES, ids=[f"{n}{o}" for n, o in STRATEGIES])
def test_two_processes_equal_one_process(distributed_results, name, options):
    single, single_history, single_state = fit(name, options)
    key = repr((name, options))
    for rank in range(WORLD):
        params, history, state = distributed_results[rank][key]
        # the batch split 8/7 and uneven missing labels: still the one-process update
        torch.testing.assert_close(params, single, atol=1e-5, rtol=0)
        for mine, theirs in zip(history, single_history, strict=True):
            for task, loss in theirs["train_loss"].items():
                assert mine["train_loss"][task] == pytest.approx(loss, abs=1e-5)
            for task, metrics in theirs["val"].items():  # metrics of the whole split
                for metric, value in metrics.items():
                    assert mine["val"][task][metric] == pytest.approx(value, abs=1e-5, nan_ok=True)
        for k, v in single_state.items():  # strategy state (UW, DWA, GradNorm, FAMO, ...)
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                torch.testing.assert_close(state[k], v, atol=1e-5, rtol=0)
    # every rank holds bit-identical parameters
    assert torch.equal(distributed_results[0][key][0], distributed_results[1][key][0])
