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

The layer calls come from one of two places:

- :class:`LayerRecorder` watches a model's shared ``nn.Linear`` and ``nn.Conv2d`` layers with
  forward hooks and keeps each call's input and output for the current step (the trainer's
  engine). It assumes the watched layers' parameters are used only through those layers'
  ``forward``; parameters shared by several modules are never watched, and a recorded tensor
  modified in place after the forward disqualifies its layer for that step.
- :func:`graph_layer_calls` finds the same calls in the losses' autograd graph, with no model
  (``mtl_backward`` from a custom loop): the ``AddmmBackward0`` / ``MmBackward0`` nodes of
  ``F.linear`` (weight reached through a ``TBackward0``) and the ``ConvolutionBackward0`` nodes of
  2-d convolutions, the input being the tensor each node saved for its backward and ``δₜ`` the
  gradient at the node's own edge. A parameter that any other node also reads is left to
  autograd.

The engine then asks autograd for ``∂Lₜ/∂z`` of every call's output (and for the gradients of
shared parameters no call owns, e.g. normalization layers) and builds the rest with
:class:`LinearJacobian` / :class:`Conv2dJacobian` (:func:`jacobian_layerwise`). It also checks
the result against the plain per-task loop before it first chooses this method (see
:class:`mtlkit.weighting.GradientEngine`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.graph import GradientEdge, Node
from torch.utils.hooks import RemovableHandle


@dataclass
class LayerCall:
    """One call of a linear or convolutional layer, from a forward hook or from the graph.

    ``output`` is where the reverse passes stop and read ``δₜ``: the layer's output tensor
    (forward hook) or the gradient edge into its autograd node (:func:`graph_layer_calls`).
    ``geometry`` is ``(kernel, dilation, padding, stride)`` for a convolution, ``None`` for a
    linear map.
    """

    weight: Tensor
    bias: Tensor | None
    geometry: tuple[tuple[int, int], ...] | None
    input: Tensor
    output: Tensor | GradientEdge
    module: nn.Module | None = None
    input_version: int = 0
    output_version: int = 0

    @property
    def kind(self) -> type[nn.Module]:
        """``nn.Linear`` or ``nn.Conv2d``: the key of :data:`LAYER_JACOBIANS`."""
        return nn.Linear if self.geometry is None else nn.Conv2d

    def parameters(self) -> list[Tensor]:
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def intact(self) -> bool:
        return self.input._version == self.input_version and (
            not isinstance(self.output, Tensor) or self.output._version == self.output_version
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


def unfold_patches(a: Tensor, geometry: nn.Conv2d | tuple[tuple[int, int], ...]) -> Tensor:
    """The convolution's input patches as a ``(in·kh·kw, B·L)`` matrix, by one strided copy.

    Column ``b·L + l`` is patch ``l`` of sample ``b``: ``unfold(a)`` with the batch moved into
    the columns (several times faster than :func:`torch.nn.functional.unfold` on a CPU).
    """
    if isinstance(geometry, nn.Conv2d):
        geometry = _conv_geometry(geometry)  # type: ignore[assignment]
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

    def __init__(self, call: LayerCall, num_tasks: int) -> None:
        self.call = call
        self.inputs = self.input_matrix(call.input)  # (in, N)
        out = call.weight.shape[0]
        self.deltas = call.input.new_zeros(num_tasks, out, self.inputs.shape[1])

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
        if self.call.bias is not None:
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
        assert self.call.geometry is not None
        batched = inputs if inputs.dim() == 4 else inputs.unsqueeze(0)
        return unfold_patches(batched, self.call.geometry)

    def add(self, task: int, delta: Tensor) -> None:
        out = self.call.weight.shape[0]
        delta = delta.reshape(-1, out, delta.shape[-2] * delta.shape[-1])
        self.deltas[task].view(delta.shape[1], delta.shape[0], -1).copy_(delta.transpose(0, 1))


LAYER_JACOBIANS: dict[type, type[LayerJacobian]] = {
    nn.Linear: LinearJacobian,
    nn.Conv2d: Conv2dJacobian,
}
"""The layer types the recorder watches (exact types), and how their rows are built (keyed by
:attr:`LayerCall.kind` for graph-found calls too)."""


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
        geometry = _conv_geometry(module) if isinstance(module, nn.Conv2d) else None
        calls.append(
            LayerCall(
                module.weight,
                module.bias,
                geometry,
                args[0],
                output,
                module,
                args[0]._version,
                output._version,
            )
        )
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


def patch_length(layer: nn.Conv2d | Tensor) -> int:
    """``in_channels·kh·kw``: the inner dimension of the convolution's weight gradient (from
    the layer or its weight)."""
    weight = layer.weight if isinstance(layer, nn.Module) else layer
    return int(weight.shape[1:].numel())


def _leaf(node: Node | None) -> Tensor | None:
    """The leaf tensor of an ``AccumulateGrad`` node."""
    return getattr(node, "variable", None)


def _saved(node: Node, name: str) -> Tensor | None:
    """A tensor the node saved for its backward, or ``None`` if unavailable (freed, or modified
    in place since: unpacking then raises)."""
    try:
        tensor = getattr(node, name, None)
    except RuntimeError:
        return None
    return tensor if isinstance(tensor, Tensor) else None


def _node_call(node: Node) -> tuple[LayerCall, list[tuple[Node, Node]]] | None:
    """The layer call an autograd node computes, with the graph edges ``(parent, child)`` by
    which it reads its parameters; ``None`` if the node is not one of:

    - ``AddmmBackward0`` with ``α = β = 1`` (``F.linear`` with a bias: ``b + a Wᵀ``), its
      ``mat2`` a ``TBackward0`` of a leaf ``W`` and its ``self`` a leaf 1-d bias or no leaf;
    - ``MmBackward0`` (``F.linear`` without bias: ``a Wᵀ``), ``mat2`` as above;
    - ``ConvolutionBackward0`` of a 2-d, non-transposed, ungrouped convolution whose weight
      (and bias) are leaves.
    """
    name = type(node).__name__
    children = [child for child, _ in node.next_functions]
    if name in ("AddmmBackward0", "MmBackward0"):
        addmm = name == "AddmmBackward0"
        if addmm and (node._saved_alpha != 1 or node._saved_beta != 1):
            return None
        transpose = children[-1]
        if type(transpose).__name__ != "TBackward0":
            return None
        weight_node = transpose.next_functions[0][0]
        weight = _leaf(weight_node)
        inputs = _saved(node, "_saved_mat1" if addmm else "_saved_self")
        if weight is None or weight.dim() != 2 or inputs is None or inputs.dim() != 2:
            return None
        edges = [(node, transpose), (transpose, weight_node)]
        bias = _leaf(children[0]) if addmm else None
        if bias is not None:
            if tuple(bias.shape) != (weight.shape[0],):
                return None
            edges.append((node, children[0]))
        return LayerCall(weight, bias, None, inputs, GradientEdge(node, 0)), edges
    if name == "ConvolutionBackward0":
        weight = _leaf(children[1])
        inputs = _saved(node, "_saved_input")
        if weight is None or weight.dim() != 4 or inputs is None or inputs.dim() != 4:
            return None
        if node._saved_transposed or node._saved_groups != 1:
            return None
        geometry = tuple(
            tuple(int(v) for v in pair)
            for pair in (
                weight.shape[2:],
                node._saved_dilation,
                node._saved_padding,
                node._saved_stride,
            )
        )
        if any(len(pair) != 2 for pair in geometry):
            return None
        edges = [(node, children[1])]
        bias = _leaf(children[2])
        if bias is not None:
            edges.append((node, children[2]))
        return LayerCall(weight, bias, geometry, inputs, GradientEdge(node, 0)), edges
    return None


def graph_layer_calls(roots: Sequence[Tensor], params: Sequence[Tensor]) -> list[LayerCall]:
    """The linear and convolutional layer calls in the autograd graph of ``roots`` whose weight
    is one of ``params``, found without hooks (so without the model).

    A call is kept only if each of its parameters reaches the graph through kept calls alone
    (every other use of the parameter, e.g. a weight tied into another operation or a second
    ``Wᵀ`` consumer that is not a layer, leaves the parameter to autograd), so that the layer
    columns built from the kept calls are the whole gradient. The layer input is the tensor the
    node saved for its backward; its output gradient is read at the node's gradient edge.
    """
    wanted = {id(p) for p in params}
    uses: dict[Node, list[Node]] = {}
    order: list[Node] = []
    seen: set[Node] = set()
    stack = [r.grad_fn for r in roots if r.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        order.append(node)
        for child, _ in node.next_functions:
            if child is not None:
                uses.setdefault(child, []).append(node)
                stack.append(child)
    found: dict[Node, tuple[LayerCall, list[tuple[Node, Node]]]] = {}
    for node in reversed(order):  # roughly forward order
        entry = _node_call(node)
        if entry is not None and id(entry[0].weight) in wanted:
            found[node] = entry
    while True:  # drop calls reading a parameter that something else also reads
        claimed: dict[Node, set[Node]] = {}  # child -> the kept calls' nodes reading it
        for _, edges in found.values():
            for parent, child in edges:
                claimed.setdefault(child, set()).add(parent)
        rejected = [
            node
            for node, (_, edges) in found.items()
            if any(len(claimed[child]) != len(uses[child]) for _, child in edges)
        ]
        if not rejected:
            return [call for call, _ in found.values()]
        for node in rejected:
            del found[node]


def jacobian_layerwise(
    losses: Tensor | Sequence[Tensor],
    params: Sequence[Tensor],
    calls: LayerRecorder | Sequence[LayerCall],
    min_patch_length: int = MIN_PATCH_LENGTH,
) -> Tensor:
    """``J`` (T × P) with the layer calls' parameter columns built from output gradients.

    ``calls`` are a recorder's usable calls or those of :func:`graph_layer_calls`. One reverse
    pass per task computes the output gradients ``δₜ`` of every call (except convolutions with
    patches shorter than ``min_patch_length``, see :data:`MIN_PATCH_LENGTH`) and the gradients
    of the remaining parameters, and runs none of those layers' weight-gradient kernels; their
    columns come from :class:`LayerJacobian`.
    """
    num_tasks = len(losses)
    if isinstance(calls, LayerRecorder):
        calls = calls.usable_calls()
    calls = [
        call
        for call in calls
        if call.geometry is None or patch_length(call.weight) >= min_patch_length
    ]
    covered = {id(p) for call in calls for p in call.parameters()}
    others = [p for p in params if id(p) not in covered]
    inputs = [call.output for call in calls] + others
    layers = [LAYER_JACOBIANS[call.kind](call, num_tasks) for call in calls]
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
        for p, rows in zip(layer.call.parameters(), layer.rows(), strict=True):
            if id(p) in columns:
                jacobian[:, columns[id(p)]] += rows
    return jacobian
