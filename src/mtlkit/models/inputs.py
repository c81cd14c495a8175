"""The model's input layer for tables with categorical codes: learned embeddings.

A preprocessed table row is one float tensor ``[dense features | code columns]``
(:class:`mtlkit.data.TabularPreprocessor`: ``n_dense`` standardized numbers, missing
indicators and one-hot blocks, then one integer code per embedded categorical column, stored
as a float). :class:`TabularInput` turns the codes into learned vectors; :class:`WithInputLayer`
puts it in front of any multi-task model, so that MMoE/PLE experts, the gate encoder or
cross-stitch columns all read the same embeddings: one set of tables, shared by every task. An
architecture whose tasks share nothing (STL, the Δm baseline) gets one :class:`EncoderWithInput`
per task instead: its own tables in each task's encoder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from mtlkit.models.base import Inputs, MultiTaskModel, check_model
from mtlkit.tasks import Task


class EmbeddingSpecLike(Protocol):
    """One code column's table (``mtlkit.data.EmbeddingSpec``): ``num_embeddings`` rows of
    ``dim`` numbers; code 0 is the missing / unseen / "other" row."""

    column: str
    num_embeddings: int
    dim: int


_HOST_CHECKED: ContextVar[frozenset[int]] = ContextVar("tabular_host_checked", default=frozenset())
"""Ids of the :class:`TabularInput` layers whose inputs were checked on the host (see
:func:`codes_checked`)."""


class TabularInput(nn.Module):
    """``[d | c₁ … c_k] ↦ [d, E₁[c₁], …, E_k[c_k]]``: dense part kept, each code looked up.

    ``x`` has ``n_dense + k`` columns; column ``n_dense + i`` holds an integer code into table
    ``Eᵢ`` (``specs[i].num_embeddings × specs[i].dim``), read exactly (rounded, then made an
    integer; float32 holds every integer below 2²⁴). A code outside ``[0, num_embeddings)``
    (or NaN) is a ``ValueError`` naming the column: the inputs were not made by the
    preprocessing this layer was built for. On a GPU this check waits for the device (a host
    sync per forward); :func:`check_codes_on_host` checks a batch while it is still on the CPU
    and :func:`codes_checked` then leaves the check out of the forward passes on that batch
    (the trainer does both). The output has ``out_features = n_dense + Σ dimᵢ``
    columns. Tables start as ``nn.Embedding``'s ``N(0, 1)``, the scale of the standardized
    dense features.

    Gradients of the tables are dense: the weighting strategies combine per-task gradients as
    dense rows of the Jacobian anyway (a sparse gradient would save nothing), and ``sparse=True``
    is refused.

    Example
    -------
    >>> from mtlkit.data import EmbeddingSpec
    >>> layer = TabularInput(2, [EmbeddingSpec("city", 10, 4)])
    >>> layer(torch.tensor([[0.5, -1.0, 3.0]])).shape
    torch.Size([1, 6])
    """

    def __init__(
        self, n_dense: int, specs: Sequence[EmbeddingSpecLike], sparse: bool = False
    ) -> None:
        super().__init__()
        if sparse:
            raise ValueError(
                "TabularInput: sparse embedding gradients are not supported; the weighting "
                "strategies combine the tasks' gradients as dense Jacobian rows and the "
                "optimizers (Adam, ...) need dense gradients, so a sparse gradient would save no "
                "memory. Leave sparse=False"
            )
        if int(n_dense) < 0:
            raise ValueError(f"TabularInput: n_dense must be >= 0, got {n_dense}")
        for spec in specs:
            if int(spec.num_embeddings) < 1 or int(spec.dim) < 1:
                raise ValueError(
                    f"TabularInput: column {spec.column!r}: num_embeddings and dim must be >= 1, "
                    f"got {spec.num_embeddings} and {spec.dim}"
                )
        self.n_dense = int(n_dense)
        self.columns = [str(s.column) for s in specs]
        self.embeddings = nn.ModuleList(
            nn.Embedding(int(s.num_embeddings), int(s.dim)) for s in specs
        )
        self.in_features = self.n_dense + len(self.columns)
        self.out_features = self.n_dense + sum(int(s.dim) for s in specs)
        sizes = torch.tensor([int(s.num_embeddings) for s in specs], dtype=torch.long)
        self.register_buffer("sizes", sizes, persistent=False)  # integer: .to(dtype) keeps it
        self._host_sizes = sizes.clone()  # not a buffer: stays on the CPU for CPU inputs

    @property
    def num_embeddings(self) -> list[int]:
        return [e.num_embeddings for e in self.embeddings]

    @property
    def dims(self) -> list[int]:
        return [e.embedding_dim for e in self.embeddings]

    def codes(self, x: Tensor) -> Tensor:
        """The code columns of ``x`` as integer indices ``(N, k)``, checked against the tables."""
        checking = not (torch.jit.is_tracing() or torch.compiler.is_compiling())
        if checking and (x.dim() != 2 or x.shape[1] != self.in_features):
            raise ValueError(
                f"TabularInput: expected inputs of shape (N, {self.in_features}) ({self.n_dense} "
                f"dense + {len(self.columns)} code columns), got {tuple(x.shape)}"
            )
        values = x[:, self.n_dense :]
        if values.is_floating_point():
            exact = 2 / torch.finfo(values.dtype).eps  # every integer up to this is exact
            if max(self.num_embeddings, default=1) - 1 > exact:
                raise TypeError(
                    f"TabularInput: {values.dtype} inputs cannot hold codes up to "
                    f"{max(self.num_embeddings) - 1} exactly; pass float32 inputs"
                )
            codes = torch.round(values).clamp(-1, exact).long()  # NaN: caught below
        else:
            codes = values.long()
        # an exported model (TorchScript, torch.export) leaves the check out
        if checking and id(self) not in _HOST_CHECKED.get():
            self._check_range(values, codes)
        return codes

    def _check_range(self, values: Tensor, codes: Tensor) -> None:
        sizes = self._host_sizes if codes.device.type == "cpu" else self.sizes
        bad = (codes < 0) | (codes >= sizes)
        if values.is_floating_point():
            bad |= values.isnan()
        if not bool(bad.any()):
            return
        row, col = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"input column {self.columns[col]!r}: code {values[row, col].item():g} (batch row "
            f"{row}) is outside [0, {self.num_embeddings[col]}), the rows of its embedding "
            f"table ({int(bad[:, col].sum())} row(s) of this batch have such a code); the inputs "
            "do not come from the preprocessing this model was built for"
        )

    def forward(self, x: Tensor) -> Tensor:
        codes = self.codes(x)
        looked_up = [table(codes[:, i]) for i, table in enumerate(self.embeddings)]
        return torch.cat([x[:, : self.n_dense], *looked_up], dim=1)

    def extra_repr(self) -> str:
        return f"n_dense={self.n_dense}, columns={self.columns}, out_features={self.out_features}"


def check_codes_on_host(model: nn.Module, inputs: Inputs) -> list[TabularInput]:
    """Check the code columns of ``inputs`` for ``model``'s input layer while they are on the
    CPU (where reading the check's result costs no device sync); the layers checked.

    Checked: the :class:`TabularInput` of a :class:`WithInputLayer` (it reads the model's
    inputs as they are), when every input tensor is on the CPU; otherwise none, and the forward
    pass checks. Raises the layer's ``ValueError`` naming the column of an out-of-range code.
    """
    layer = getattr(model, "input_layer", None)
    if not isinstance(model, WithInputLayer) or not isinstance(layer, TabularInput):
        return []
    tensors = list(inputs.values()) if isinstance(inputs, Mapping) else [inputs]
    if not all(isinstance(x, Tensor) and x.device.type == "cpu" for x in tensors):
        return []
    for x in tensors:
        layer.codes(x)
    return [layer]


@contextlib.contextmanager
def codes_checked(layers: Sequence[TabularInput]) -> Iterator[None]:
    """Inside, ``layers`` leave their range check out of the forward pass: the caller checked
    the same inputs with :func:`check_codes_on_host` before moving them to the device."""
    token = _HOST_CHECKED.set(_HOST_CHECKED.get() | {id(layer) for layer in layers})
    try:
        yield
    finally:
        _HOST_CHECKED.reset(token)


class EncoderWithInput(nn.Module):
    """``encoder(input_layer(x))`` as one encoder, with ``out_features`` of ``encoder``.

    For an architecture whose tasks share nothing (``independent_tasks``, STL): each task's
    encoder then has its own tables, so that the baseline stays single-task.
    """

    def __init__(self, input_layer: TabularInput, encoder: nn.Module) -> None:
        super().__init__()
        self.input_layer = input_layer
        self.encoder = encoder
        self.input_shape: tuple[int, ...] = (input_layer.in_features,)
        self.out_features = int(encoder.out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(self.input_layer(x))


class WithInputLayer(MultiTaskModel):
    """``outputs = model(input_layer(x))``: a multi-task model behind an input layer.

    The input layer's parameters (embedding tables) are read by every task, so they are
    *shared*: :meth:`shared_parameters` lists them before the model's, and the weighting
    strategy's combined gradient reaches them. Everything else is the model's: the tasks,
    the last shared layer (GradNorm), ``forward_with_representation`` (representation mode),
    :meth:`add_task`. With multi-input data each task's input goes through the input layer.
    State-dict keys: ``input_layer.*`` and ``model.*``.

    Example
    -------
    >>> from mtlkit.data import EmbeddingSpec
    >>> from mtlkit.models import make_encoder, make_model
    >>> from mtlkit.tasks import Task
    >>> layer = TabularInput(3, [EmbeddingSpec("user", 1000, 12)])
    >>> mmoe = make_model(
    ...     "mmoe",
    ...     lambda: make_encoder("mlp", (layer.out_features,), hidden=[16]),
    ...     [Task("click", "binary"), Task("buy", "binary")],
    ... )
    >>> model = WithInputLayer(mmoe, layer)
    >>> sorted(model(torch.tensor([[0.1, 0.2, 0.3, 42.0]])))
    ['buy', 'click']
    """

    def __init__(self, model: MultiTaskModel, input_layer: nn.Module) -> None:
        super().__init__()
        check_model(model)
        self.input_layer = input_layer
        self.model = model

    @property
    def tasks(self) -> Sequence[Task]:  # type: ignore[override]
        return self.model.tasks

    @property
    def task_names(self) -> list[str]:
        return self.model.task_names

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.input_layer.parameters()
        yield from self.model.shared_parameters()

    def last_shared_modules(self) -> list[nn.Module]:
        return self.model.last_shared_modules()

    def last_shared_parameters(self, layer: str | None = None) -> list[nn.Parameter]:
        """The model's last shared layer; ``layer`` names a module of the model (as without an
        input layer, e.g. ``"encoder.stages.1"``) or of this wrapper (``"input_layer"``)."""
        if layer is None or layer in dict(self.model.named_modules()):
            return self.model.last_shared_parameters(layer)
        return super().last_shared_parameters(layer)

    @property
    def forward_with_representation(self) -> Callable[[Tensor], tuple[dict[str, Tensor], Tensor]]:
        """The model's ``forward_with_representation`` behind the input layer; an
        ``AttributeError`` (so ``hasattr`` is false) when the model has none."""
        inner = self.model.forward_with_representation
        return lambda x: inner(self.input_layer(x))

    def add_task(self, task: Task, head_hidden: int | None = None, **options: Any) -> None:
        """Attach ``task`` to the model (:func:`mtlkit.models.transfer.add_task`); the input
        layer is unchanged."""
        from mtlkit.models.transfer import add_task

        add_task(self.model, task, head_hidden=head_hidden, **options)

    def forward(self, x: Inputs) -> dict[str, Tensor]:
        if isinstance(x, Mapping):
            return self.model({name: self.input_layer(xt) for name, xt in x.items()})
        return self.model(self.input_layer(x))


__all__ = [
    "EmbeddingSpecLike",
    "EncoderWithInput",
    "TabularInput",
    "WithInputLayer",
    "check_codes_on_host",
    "codes_checked",
]
