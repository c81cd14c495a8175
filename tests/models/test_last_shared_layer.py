"""The default last shared layer (GradNorm's ``layer="last"``) of every architecture: its
parameters are shared and feed every head."""

from __future__ import annotations

import pytest
import torch
from models_testutil import CASE_IDS, CASES, TASKS, build, data

from mtlkit.models.architectures import ARCHITECTURES


def _outputs(model, x) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {k: v.clone() for k, v in model(x).items()}


def _perturbed(model, x, params) -> dict[str, torch.Tensor]:
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn_like(p))
    out = _outputs(model, x)
    with torch.no_grad():
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
    return out


def _changed(before, after) -> set[str]:
    return {k for k in before if not torch.allclose(before[k], after[k])}


def test_every_registered_architecture_has_a_case():
    assert {arch for arch, _ in CASES} == set(ARCHITECTURES)


@pytest.mark.parametrize(("arch", "options"), CASES, ids=CASE_IDS)
def test_last_shared_parameters_are_shared_and_feed_every_head(arch, options):
    torch.manual_seed(0)
    model = build(arch, options).eval()
    x, _ = data(n=8)
    names = {t.name for t in TASKS}
    last = model.last_shared_parameters()
    shared = {id(p) for p in model.shared_parameters()}
    assert {id(p) for p in last} <= shared
    if not shared:  # stl: nothing is shared, so there is no last shared layer
        assert last == []
        return
    assert last
    base = _outputs(model, x)
    assert _changed(base, _perturbed(model, x, last)) == names
    for task in names:
        head = list(model.heads[task].parameters())
        assert _changed(base, _perturbed(model, x, head)) == {task}
