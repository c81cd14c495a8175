"""The penalty λR(θ): each registered penalty is its declared shares of Σ|θ| and ½Σθ²."""

import pytest
import torch

from mtlkit.training import penalty
from mtlkit.training.regularization import PENALTIES

# θ = (1, −2): Σ|θ| = 3, ½Σθ² = 2.5
L1, HALF_L2 = 3.0, 2.5


def _theta() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor([1.0, -2.0]))


@pytest.mark.parametrize("kind", list(PENALTIES))
def test_every_penalty_is_its_declared_shares_of_l1_and_half_l2(kind):
    l1_share, l2_share = PENALTIES[kind](0.25)
    got = penalty([_theta()], kind, 2.0, l1_ratio=0.25)
    if l1_share == l2_share == 0:
        assert got is None
    else:
        assert got.item() == pytest.approx(2.0 * (l1_share * L1 + l2_share * HALF_L2))


def test_declared_shares_of_the_built_in_penalties():
    assert {kind: shares(0.25) for kind, shares in PENALTIES.items()} == {
        "none": (0.0, 0.0),
        "l1": (1.0, 0.0),
        "l2": (0.0, 1.0),
        "elasticnet": (0.25, 0.75),
    }


def test_a_penalty_added_to_the_registry_needs_no_other_change(monkeypatch):
    monkeypatch.setitem(PENALTIES, "half", lambda l1_ratio: (0.5, 0.5))
    assert penalty([_theta()], "half", 2.0).item() == pytest.approx(2.0 * (1.5 + 1.25))


def test_nothing_to_penalize_is_none_and_an_unknown_kind_is_an_error():
    assert penalty([_theta()], "l1", 0.0) is None
    assert penalty([torch.nn.Parameter(torch.ones(2), requires_grad=False)], "l2", 1.0) is None
    with pytest.raises(ValueError, match="regularization.kind must be one of none, l1, l2"):
        penalty([_theta()], "l3", 1.0)
