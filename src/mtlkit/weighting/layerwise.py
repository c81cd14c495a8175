"""Per-task weight gradients of linear and convolutional layers from their inputs and output grads.

For a layer ``z = a Wᵀ + b`` (or a convolution, a linear map of the unfolded input patches), the
gradient of task ``t`` with respect to ``W`` is ``δₜᵀ a`` (summed over the batch) where
``δₜ = ∂Lₜ/∂z``. So the T rows of the Jacobian for such a layer need only the output gradients
``δₜ`` — from a reverse pass per task that stops at the layer outputs and runs no weight-gradient
kernel — and then one matrix product for all tasks against the input (for a convolution, its
unfolded patches, laid out once per step). On a CPU one product for all tasks is cheaper than T
weight-gradient kernels when the patches are long enough to amortise laying out the output
gradients (LeNet's second convolution, 10·5·5); a convolution with short patches (its first,
1·5·5) is left to the per-task passes (:data:`MIN_PATCH_LENGTH`).

:class:`LayerRecorder` watches the model's shared ``nn.Linear`` and ``nn.Conv2d`` layers with
forward hooks and keeps each call's input and output for the current step; the engine then asks
autograd for ``∂Lₜ/∂z`` of every recorded output (and for the gradients of shared parameters no
recorded layer owns, e.g. normalization layers) and builds the rest with
:class:`LinearJacobian` / :class:`Conv2dJacobian` (:func:`jacobian_layerwise`).

It assumes the watched layers' parameters are used only through those layers' ``forward``;
parameters shared by several modules are never watched, and a recorded tensor modified in place
after the forward disqualifies its layer for that step (autograd then handles its parameters).
The engine also checks the result against the plain per-task loop before it first chooses this
method (see :class:`mtlkit.weighting.GradientEngine`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle


@dataclass
class LayerCall:
    """One call of a watched layer: its input and output as they were after the forward."""

    module: nn.Module
    input: Tensor
    output: Tensor
    input_version: int
    output_version: int

    def intact(self) -> bool:
        return (
            self.input._version == self.input_version
            and self.output._version == self.output_version
        )


def _conv_geometry(layer: nn.Conv2d) -> tuple[tuple[int, int], ...] | None:
    """``(kernel, dilation, padding, stride)`` as pairs, or ``None`` if not handled here."""
    if layer.groups != 1 or layer.padding_mode != "zeros" or layer.padding == "same":
        return None
    padding = (0, 0) if layer.padding == "valid" else layer.padding
    return tuple(
        tuple(int(v) for v in pair)  # type: ignore[union-attr]
        for pair in (layer.kernel_size, layer.dilation, padding, layer.stride)
    )


def unfold_patches(a: Tensor, layer: nn.Conv2d) -> Tensor:
    """The convolution's input patches as a ``(in·kh·kw, B·L)`` matrix, by one strided copy.

    Column ``b·L + l`` is patch ``l`` of sample ``b``: ``unfold(a)`` with the batch moved into
    the columns (several times faster than :func:`torch.nn.functional.unfold` on a CPU).
    """
    geometry = _conv_geometry(layer)
    assert geometry is not None
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = geometry
    if ph or pw:
        a = F.pad(a, (pw, pw, ph, ph))
    batch, channels, height, width = a.shape
    out_h = (height - dh * (kh - 1) - 1) // sh + 1
    out_w = (width - dw * (kw - 1) - 1) // sw + 1
    sb, sc, sy, sx = a.stride()
    patches = a.as_strided(
        (channels, kh, kw, batch, out_h, out_w),
        (sc, sy * dh, sx * dw, sb, sy * sh, sx * sw),
    )
    return patches.reshape(channels * kh * kw, batch * out_h * out_w)


class LayerJacobian:
    """The T Jacobian rows of one layer call's parameters, from its input and output gradients.

    :meth:`add` files task ``t``'s output gradient ``δₜ`` as a ``(out, N)`` matrix (N: the
    batch, times the positions for a convolution); :meth:`rows` then gets every task's weight
    gradient ``δₜ Aᵀ`` from one product ``[δ₁; …; δ_T] Aᵀ`` against the layer's input matrix
    ``A`` (``(in, N)``; for a convolution the unfolded patches), and the bias gradient as
    ``δₜ 1``. One product for all tasks reads ``A`` once instead of T times.
    """

    def __init__(self, layer: nn.Module, inputs: Tensor, num_tasks: int) -> None:
        self.layer = layer
        self.inputs = self.input_matrix(inputs)  # (in, N)
        out = self.layer.weight.shape[0]
        self.deltas = inputs.new_zeros(num_tasks, out, self.inputs.shape[1])

    def input_matrix(self, inputs: Tensor) -> Tensor:
        raise NotImplementedError

    def add(self, task: int, delta: Tensor) -> None:
        """File ``δₜ`` (shaped as the layer's output) as row block ``task``: ``(out, N)``."""
        raise NotImplementedError

    def rows(self) -> list[Tensor]:
        """Per parameter of the layer (weight, then bias if any): ``(T, numel)``."""
        num_tasks = self.deltas.shape[0]
        weight = self.deltas.reshape(-1, self.deltas.shape[2]) @ self.inputs.T
        rows = [weight.reshape(num_tasks, -1)]
        if self.layer.bias is not None:
            rows.append(self.deltas.sum(2))
        return rows


class LinearJacobian(LayerJacobian):
    """``z = a Wᵀ + b`` on inputs of any leading shape: ``A = aᵀ`` over all leading positions."""

    def input_matrix(self, inputs: Tensor) -> Tensor:
        return inputs.reshape(-1, inputs.shape[-1]).T

    def add(self, task: int, delta: Tensor) -> None:
        self.deltas[task].copy_(delta.reshape(-1, delta.shape[-1]).T)


class Conv2dJacobian(LayerJacobian):
    """A 2-d convolution is a linear map of its input patches: ``A`` = :func:`unfold_patches`."""

    def input_matrix(self, inputs: Tensor) -> Tensor:
        return unfold_patches(inputs if inputs.dim() == 4 else inputs.unsqueeze(0), self.layer)

    def add(self, task: int, delta: Tensor) -> None:
        delta = delta.reshape(-1, self.layer.out_channels, delta.shape[-2] * delta.shape[-1])
        self.deltas[task].view(delta.shape[1], delta.shape[0], -1).copy_(delta.transpose(0, 1))


LAYER_JACOBIANS: dict[type, type[LayerJacobian]] = {
    nn.Linear: LinearJacobian,
    nn.Conv2d: Conv2dJacobian,
}
"""The layer types the recorder watches (exact types), and how their rows are built."""


def _watchable(module: nn.Module, shared: set[int], owners: dict[int, int]) -> bool:
    if type(module) not in LAYER_JACOBIANS:  # exact type: a subclass may change forward
        return False
    if isinstance(module, nn.Conv2d) and _conv_geometry(module) is None:
        return False
    params = list(module.parameters(recurse=False))
    return bool(params) and all(id(p) in shared and owners[id(p)] == 1 for p in params)


class LayerRecorder:
    """Forward hooks on a model's shared linear and convolutional layers.

    ``calls`` holds the layer calls since the last :meth:`clear` (the trainer clears at the start
    of every step). A layer called more than ``max_calls`` times since then (a model run outside
    a trainer, without clearing) drops its records and is left to autograd until the next
    clear, so memory stays bounded. Calls under ``torch.no_grad`` are ignored.
    """

    def __init__(
        self, model: nn.Module, shared_params: Sequence[Tensor], max_calls: int = 64
    ) -> None:
        shared = {id(p) for p in shared_params}
        owners: dict[int, int] = {}
        for module in model.modules():
            for p in module.parameters(recurse=False):
                owners[id(p)] = owners.get(id(p), 0) + 1
        self.layers = [m for m in model.modules() if _watchable(m, shared, owners)]
        self.max_calls = max_calls
        self.calls: dict[nn.Module, list[LayerCall]] = {}
        self.overflowed: set[nn.Module] = set()
        self._handles: list[RemovableHandle] = [
            layer.register_forward_hook(self._record) for layer in self.layers
        ]

    def _record(self, module: nn.Module, args: tuple, output: object) -> None:
        if not torch.is_grad_enabled() or not isinstance(output, Tensor):
            return
        if not output.requires_grad or not args or not isinstance(args[0], Tensor):
            return
        if module in self.overflowed:
            return
        calls = self.calls.setdefault(module, [])
        calls.append(LayerCall(module, args[0], output, args[0]._version, output._version))
        if len(calls) > self.max_calls:
            self.overflowed.add(module)
            del self.calls[module]

    def clear(self) -> None:
        self.calls.clear()
        self.overflowed.clear()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.clear()

    def usable_calls(self) -> list[LayerCall]:
        """The recorded calls of layers whose every call is still intact."""
        return [
            call
            for calls in self.calls.values()
            if all(c.intact() for c in calls)
            for call in calls
        ]


MIN_PATCH_LENGTH = 64
"""Shortest patch (``in_channels·kh·kw``) for which :func:`jacobian_layerwise` builds a
convolution's columns by one product for all tasks. A convolution with shorter patches (a first
convolution on grey images: 1·5·5 = 25) is left to the per-task reverse passes: its output
gradients, as large as its output, would be laid out for a product of only ``2·T·out·patch``
operations per patch, and on a CPU that layout costs more than autograd's per-task
weight-gradient kernels (docs/weighting.md, "After the mtl_backward seam")."""


def patch_length(layer: nn.Conv2d) -> int:
    """``in_channels·kh·kw``: the inner dimension of the convolution's weight gradient."""
    return int(layer.weight.shape[1:].numel())


def jacobian_layerwise(
    losses: Tensor | Sequence[Tensor],
    params: Sequence[Tensor],
    recorder: LayerRecorder,
    min_patch_length: int = MIN_PATCH_LENGTH,
) -> Tensor:
    """``J`` (T × P) with the watched layers' parameter columns built from output gradients.

    One reverse pass per task computes the output gradients ``δₜ`` of every recorded layer call
    (except convolutions with patches shorter than ``min_patch_length``, see
    :data:`MIN_PATCH_LENGTH`) and the gradients of the remaining parameters, and runs none of
    those layers' weight-gradient kernels; their columns come from :class:`LayerJacobian`.
    """
    num_tasks = len(losses)
    calls = [
        call
        for call in recorder.usable_calls()
        if not isinstance(call.module, nn.Conv2d) or patch_length(call.module) >= min_patch_length
    ]
    covered = {id(p) for call in calls for p in call.module.parameters(recurse=False)}
    others = [p for p in params if id(p) not in covered]
    inputs = [call.output for call in calls] + others
    layers = [
        LAYER_JACOBIANS[type(call.module)](call.module, call.input, num_tasks) for call in calls
    ]
    columns, offset = {}, 0
    for p in params:
        columns[id(p)] = slice(offset, offset + p.numel())
        offset += p.numel()
    jacobian = torch.zeros(num_tasks, offset, dtype=losses[0].dtype, device=losses[0].device)
    for t, loss in enumerate(losses):
        if not inputs or not loss.requires_grad:
            continue
        grads = torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True)
        for layer, delta in zip(layers, grads[: len(calls)], strict=True):
            if delta is not None:  # None: the call does not reach the losses (a stale forward)
                layer.add(t, delta)
        for p, g in zip(others, grads[len(calls) :], strict=True):
            if g is not None:
                jacobian[t, columns[id(p)]] = (g.to_dense() if g.is_sparse else g).reshape(-1)
    for layer in layers:
        for p, rows in zip(layer.layer.parameters(recurse=False), layer.rows(), strict=True):
            if id(p) in columns:
                jacobian[:, columns[id(p)]] += rows
    return jacobian
