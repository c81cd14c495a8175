"""Per-task weight gradients of linear and convolutional layers from their inputs and output grads.

For a layer ``z = a Wᵀ + b`` (or a convolution, a linear map of the unfolded input patches), the
gradient of task ``t`` with respect to ``W`` is ``δₜᵀ a`` (summed over the batch) where
``δₜ = ∂Lₜ/∂z``. So the T rows of the Jacobian for such a layer need only the output gradients
``δₜ`` — from a reverse pass per task that stops at the layer outputs and runs no weight-gradient
kernel — and one plain matrix product per task against the input (for a convolution, its
unfolded patches, laid out once per step). On a CPU that product is several times cheaper than
the convolution weight-gradient kernel for small convolutions (few channels, many positions).

:class:`LayerRecorder` watches the model's shared ``nn.Linear`` and ``nn.Conv2d`` layers with
forward hooks and keeps each call's input and output for the current step; the engine then asks
autograd for ``∂Lₜ/∂z`` of every recorded output (and for the gradients of shared parameters no
recorded layer owns, e.g. normalization layers) and builds the rest with
:func:`linear_weight_grads` / :func:`conv2d_weight_grads` (:func:`jacobian_layerwise`).

It assumes the watched layers' parameters are used only through those layers' ``forward``;
parameters shared by several modules are never watched, and a recorded tensor modified in place
after the forward disqualifies its layer for that step (autograd then handles its parameters).
The engine also checks the result against the plain per-task loop before it first chooses this
method (see :class:`mtlkit.weighting.GradientEngine`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def linear_weight_grads(layer: nn.Linear, a: Tensor) -> Callable[[Tensor], list[Tensor]]:
    """``δ ↦`` per-task gradients ``(T, out, in)`` (and ``(T, out)``) of ``z = a Wᵀ + b``."""
    a = a.reshape(-1, a.shape[-1])

    def grads(deltas: Tensor) -> list[Tensor]:
        d = deltas.reshape(deltas.shape[0], -1, deltas.shape[-1])
        result = [torch.matmul(d.transpose(1, 2), a)]
        if layer.bias is not None:
            result.append(d.sum(1))
        return result

    return grads


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


def conv2d_weight_grads(layer: nn.Conv2d, a: Tensor) -> Callable[[Tensor], list[Tensor]]:
    """``δ ↦`` per-task gradients ``(T, *W.shape)`` (and ``(T, out)``) of a 2-d convolution.

    ``W`` acts on the unfolded patches, ``z[b, :, l] = W_flat @ cols[:, b·L + l]``, so
    ``J_W[t] = δₜ colsᵀ`` with ``δₜ`` laid out as ``(out, B·L)``: one product per task.
    """
    unbatched = a.dim() == 3
    cols = unfold_patches(a.unsqueeze(0) if unbatched else a, layer)
    batch = 1 if unbatched else a.shape[0]

    def grads(deltas: Tensor) -> list[Tensor]:
        tasks, out = deltas.shape[0], layer.out_channels
        d = deltas.reshape(tasks, batch, out, -1).transpose(1, 2).reshape(tasks * out, -1)
        result = [(d @ cols.T).reshape(tasks, *layer.weight.shape)]
        if layer.bias is not None:
            result.append(d.sum(1).reshape(tasks, out))
        return result

    return grads


WEIGHT_GRADS: dict[type, Callable[..., Callable[[Tensor], list[Tensor]]]] = {
    nn.Linear: linear_weight_grads,
    nn.Conv2d: conv2d_weight_grads,
}
"""Per layer type: ``(layer, input) ↦ (δ of shape (T, *output.shape) ↦ per-task grads)``."""


def _watchable(module: nn.Module, shared: set[int], owners: dict[int, int]) -> bool:
    if type(module) not in WEIGHT_GRADS:  # exact type: a subclass may change forward
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


def jacobian_layerwise(losses: Tensor, params: Sequence[Tensor], recorder: LayerRecorder) -> Tensor:
    """``J`` (T × P) with the watched layers' parameter columns built from output gradients.

    One reverse pass per task computes the output gradients ``δₜ`` of every recorded layer call
    and the gradients of the remaining parameters, and skips the watched layers' own weight
    gradients; their columns come from :data:`WEIGHT_GRADS` instead.
    """
    num_tasks = losses.shape[0]
    calls = recorder.usable_calls()
    covered = {id(p) for call in calls for p in call.module.parameters(recurse=False)}
    others = [p for p in params if id(p) not in covered]
    inputs = [call.output for call in calls] + others
    layer_grads = [WEIGHT_GRADS[type(call.module)](call.module, call.input) for call in calls]
    layer_params = [list(call.module.parameters(recurse=False)) for call in calls]
    columns, offset = {}, 0
    for p in params:
        columns[id(p)] = slice(offset, offset + p.numel())
        offset += p.numel()
    jacobian = torch.zeros(num_tasks, offset, dtype=losses.dtype, device=losses.device)
    for t in range(num_tasks):
        if not inputs or not losses[t].requires_grad:
            continue
        grads = torch.autograd.grad(losses[t], inputs, retain_graph=True, allow_unused=True)
        deltas, other_grads = grads[: len(calls)], grads[len(calls) :]
        for fn, owned, delta in zip(layer_grads, layer_params, deltas, strict=True):
            if delta is None:  # this call does not reach the losses (e.g. a stale forward)
                continue
            for p, g in zip(owned, fn(delta.unsqueeze(0)), strict=True):
                if id(p) in columns:
                    jacobian[t, columns[id(p)]] += g.reshape(-1)
        for p, g in zip(others, other_grads, strict=True):
            if g is not None:
                jacobian[t, columns[id(p)]] = g.reshape(-1)
    return jacobian
