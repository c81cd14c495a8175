"""``collect_outputs`` holds no batch's tensors while it reads a split (issue #16).

Keeping each batch's outputs and target views until the end of a split interleaved thousands of
small long-lived blocks with a streamed reader's per-unit temporaries, and the heap of a
process grew with the rows of the split (0.77 GiB at 1M rows, 1.23 GiB at 10M under torchrun).
"""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import nn

from mtlkit.training.evaluation import collect_outputs


class _Linear(nn.Module):
    """Task ``a``: ``x @ w``; remembers a weak reference to every output it returns."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([[1.0], [-2.0], [0.5]]))
        self.outputs: list[weakref.ref] = []

    def forward(self, x):
        out = x @ self.weight
        self.outputs.append(weakref.ref(out))
        return {"a": out}


class _Units:
    """Batches that are views of per-unit tensors, as ``StreamLoader``'s are; before making
    each unit it records how many earlier units' tensors and model outputs are still alive."""

    def __init__(self, model: _Linear, units: int, rows: int, batch: int, num_rows=None):
        self.model, self.units, self.rows, self.batch = model, units, rows, batch
        self.num_rows = units * rows if num_rows is None else num_rows
        self.generator = torch.Generator().manual_seed(0)
        self.inputs: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []
        self.units_alive: list[int] = []
        self.outputs_alive: list[int] = []
        self._refs: list[weakref.ref] = []

    def __iter__(self):
        for _ in range(self.units):
            gc.collect()
            self.units_alive.append(sum(ref() is not None for ref in self._refs))
            self.outputs_alive.append(sum(ref() is not None for ref in self.model.outputs))
            x = torch.randn(self.rows, 3, generator=self.generator)
            y = torch.randint(0, 2, (self.rows,), generator=self.generator).float()
            self.inputs.append(x.clone())
            self.targets.append(y.clone())
            self._refs += [weakref.ref(x), weakref.ref(y)]
            for start in range(0, self.rows, self.batch):
                yield x[start : start + self.batch], {"a": y[start : start + self.batch]}


def test_no_batch_tensor_outlives_its_unit():
    model = _Linear()
    loader = _Units(model, units=12, rows=100, batch=30)
    collect_outputs(model, loader)
    # before each unit: only the previous unit's x and y (the reader's own locals), and at
    # most the last batch's output, are alive; not one tensor per batch or unit read so far
    assert max(loader.units_alive) <= 2
    assert max(loader.outputs_alive) <= 1


@pytest.mark.parametrize("num_rows", [None, 1, 1200, 5000])
def test_outputs_and_targets_are_the_split_in_order(num_rows):
    """Reference values, whatever the loader's ``num_rows`` says (exact, too small, too
    large); the returned tensors own no spare capacity."""
    model = _Linear()
    loader = _Units(model, units=4, rows=300, batch=128, num_rows=num_rows)
    if num_rows is None:
        del loader.num_rows  # a plain iterable of batches
    outputs, targets = collect_outputs(model, loader)
    x, y = torch.cat(loader.inputs), torch.cat(loader.targets)
    torch.testing.assert_close(outputs["a"], x @ model.weight.detach(), rtol=0, atol=0)
    assert torch.equal(targets["a"], y)
    for tensor in (outputs["a"], targets["a"]):
        assert tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()


def test_integer_and_multi_column_targets_keep_dtype_and_shape():
    class TwoTasks(nn.Module):
        def forward(self, x):
            return {"c": x[:, :3] * 2, "r": x[:, 3:]}

    x = torch.arange(40, dtype=torch.float32).reshape(10, 4)
    labels = torch.arange(10) % 3
    batches = [(x[i : i + 4], {"c": labels[i : i + 4], "r": x[i : i + 4, 3:]}) for i in (0, 4, 8)]
    outputs, targets = collect_outputs(TwoTasks(), batches)
    assert targets["c"].dtype == torch.int64 and torch.equal(targets["c"], labels)
    assert outputs["c"].shape == (10, 3) and torch.equal(outputs["c"], x[:, :3] * 2)
    assert targets["r"].shape == (10, 1) and torch.equal(targets["r"], x[:, 3:])
