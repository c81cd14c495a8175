"""Staged encoders: MLP, LeNet and a user's own stages in soft-sharing architectures."""

from __future__ import annotations

import pytest
import torch
from models_testutil import TASKS
from torch import nn

from mtlkit.models import make_model
from mtlkit.models.encoders import MLP, LeNet, Staged, stage_list, stage_shapes


@pytest.mark.parametrize(
    ("encoder", "x"),
    [(MLP(6, (5, 4)), torch.randn(3, 6)), (LeNet(1, 16, 7), torch.randn(3, 16, 16))],
)
def test_forward_equals_applying_the_stages(encoder, x):
    h = x
    for stage in stage_list(encoder):
        h = stage(h)
    torch.testing.assert_close(h, encoder(x))
    assert stage_shapes(encoder)[-1] == (encoder.out_features,)


def _conv1d_encoder():
    return Staged(
        [
            nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv1d(4, 6, 3, stride=2), nn.ReLU()),
            nn.Sequential(nn.Flatten(), nn.Linear(6 * 4, 5), nn.ReLU()),
        ],
        input_shape=(2, 10),
    )


def test_staged_infers_out_features_and_needs_a_shape():
    assert _conv1d_encoder().out_features == 5
    with pytest.raises(ValueError, match="input_shape"):
        Staged([nn.Linear(2, 3)])
    assert Staged([nn.Linear(2, 3)], out_features=3).out_features == 3


@pytest.mark.parametrize("arch", ["cross_stitch", "mtan", "mmoe"])
def test_soft_sharing_works_with_a_user_staged_encoder(arch):
    model = make_model(arch, _conv1d_encoder, TASKS)
    out = model(torch.randn(3, 2, 10))
    assert out["a"].shape == (3, 3)
    sum(o.sum() for o in out.values()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_non_staged_encoders_get_a_clear_error():
    class Plain(nn.Module):
        out_features = 4

        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(6, 4)

        def forward(self, x):
            return self.linear(x)

    with pytest.raises(ValueError, match="Staged"):
        make_model("mtan", Plain, TASKS)
    with pytest.raises(ValueError, match="input_shape"):
        make_model("mmoe", Plain, TASKS, gate_input="input")
    # ... unless the input shape is given as an option.
    model = make_model("mmoe", Plain, TASKS, gate_input="input", input_shape=[6])
    assert model(torch.randn(2, 6))["b"].shape == (2, 1)
