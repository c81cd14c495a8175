"""Time each way of getting the exact per-task Jacobian on step_time.py's LeNet, and its parts.

Rows (each includes the forward pass and the T losses, except where said):

- ``forward``: the forward pass and the T losses alone.
- ``loop``, ``batched``, ``layerwise``: the engine's methods (:mod:`mtlkit.weighting.engine`).
- ``layerwise, every conv by products``: layerwise with ``min_patch_length=0`` (LeNet's first
  convolution, 1·5·5 patches, also built by one product instead of autograd's kernels).
- ``passes to layer outputs``: only the T reverse passes that stop at the watched layers'
  outputs (layerwise's first half).
- ``batched VJP from the features``: T head gradients w.r.t. the features, then one
  ``is_grads_batched`` (vmapped) reverse pass through the trunk to the watched layers' outputs —
  the same output gradients as the previous row, by one batched pass instead of T.
- ``fc Gramian, J`` / ``fc Gramian, autogram``: the last Linear layer's Gramian block (no
  forward), from its Jacobian rows ``δₜᵀA`` or as ``Σ (ΔₜΔₛᵀ) ⊙ (AAᵀ)`` without the rows.

Timed like step_time.py: warm-up, then rounds in shuffled order; medians over rounds in ms and
the per-round ratio to ``loop``::

    .venv/bin/python benchmarks/weighting/jacobian_methods.py --tasks 4 --rounds 15
    .venv/bin/python benchmarks/weighting/jacobian_methods.py --threads 1 --clock cpu
"""

from __future__ import annotations

import argparse
import statistics

import torch
from step_time import CLOCKS, build, per_round_ratios, time_rounds

from mtlkit.cli.threads import positive_int
from mtlkit.weighting.engine import jacobian_batched, jacobian_loop
from mtlkit.weighting.layerwise import LayerRecorder, jacobian_layerwise


def steps_for(num_tasks: int, batch: int) -> dict:
    model, tasks, x, y = build(num_tasks, batch)
    shared = list(model.shared_parameters())
    recorder = LayerRecorder(model, shared)

    def forward():
        recorder.clear()
        rep = model.encode(x)
        return rep, [t.compute_loss(model.heads[t.name](rep), y[t.name]) for t in tasks]

    def outputs():
        return [call.output for call in recorder.usable_calls()]

    def passes_to_outputs():
        _, losses = forward()
        targets = outputs()
        for loss in losses:
            torch.autograd.grad(loss, targets, retain_graph=True)

    def batched_from_features():
        rep, losses = forward()
        heads = torch.stack(
            [torch.autograd.grad(loss, rep, retain_graph=True)[0] for loss in losses]
        )
        torch.autograd.grad(rep, outputs(), heads, retain_graph=True, is_grads_batched=True)

    fc = recorder.layers[-1]
    rep, losses = forward()
    (fc_call,) = recorder.calls[fc]
    a = fc_call.input.detach()
    deltas = torch.stack(
        [torch.autograd.grad(loss, fc_call.output, retain_graph=True)[0] for loss in losses]
    )

    def fc_gramian_rows():
        rows = torch.einsum("tbo,bi->toi", deltas, a).reshape(num_tasks, -1)
        return rows @ rows.T

    def fc_gramian_autogram():
        flat = deltas.reshape(-1, deltas.shape[-1])  # (T·B, out)
        products = (flat @ flat.T).view(num_tasks, batch, num_tasks, batch) * (a @ a.T)[
            None, :, None, :
        ]
        return products.sum((1, 3))

    torch.testing.assert_close(fc_gramian_autogram(), fc_gramian_rows(), rtol=1e-3, atol=1e-6)
    return {
        "forward": forward,
        "loop": lambda: jacobian_loop(forward()[1], shared),
        "batched": lambda: jacobian_batched(torch.stack(forward()[1]), shared),
        "layerwise": lambda: jacobian_layerwise(forward()[1], shared, recorder),
        "layerwise, every conv by products": lambda: jacobian_layerwise(
            forward()[1], shared, recorder, min_patch_length=0
        ),
        "passes to layer outputs": passes_to_outputs,
        "batched VJP from the features": batched_from_features,
        "fc Gramian, J": fc_gramian_rows,
        "fc Gramian, autogram": fc_gramian_autogram,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[4])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=positive_int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall")
    args = parser.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu counts the timing thread only: use it with --threads 1")
    torch.set_num_threads(args.threads)
    for num_tasks in args.tasks:
        times = time_rounds(
            steps_for(num_tasks, args.batch),
            args.rounds,
            warmup=args.warmup,
            seed=num_tasks,
            clock=CLOCKS[args.clock],
        )
        print(
            f"\nT={num_tasks}, batch {args.batch}, {args.rounds} rounds, torch threads "
            f"{args.threads}, {args.clock} clock: median ms, and ÷ loop per round (median)"
        )
        for label, seconds in times.items():
            ratio = statistics.median(per_round_ratios(seconds, times["loop"]))
            print(f"{label:36s}{1000 * statistics.median(seconds):8.1f}{ratio:8.2f}")


if __name__ == "__main__":
    main()
