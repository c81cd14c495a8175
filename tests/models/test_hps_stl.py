import pytest
import torch

from mtlkit.models import make_encoder, make_model
from mtlkit.tasks import Task

TASKS = [Task("a", "multiclass", 3), Task("b", "regression"), Task("c", "binary")]


def _factory(kind="mlp"):
    shape = (6,) if kind == "mlp" else (1, 28, 28)
    return lambda: make_encoder(kind, shape, **({"hidden": [8]} if kind == "mlp" else {}))


@pytest.mark.parametrize("encoder", ["mlp", "lenet"])
@pytest.mark.parametrize("arch", ["hps", "stl"])
def test_output_shapes(arch, encoder):
    model = make_model(arch, _factory(encoder), TASKS)
    x = torch.randn(5, 6) if encoder == "mlp" else torch.randn(5, 1, 28, 28)
    out = model(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {"a": (5, 3), "b": (5, 1), "c": (5, 1)}


def test_hps_shares_the_encoder_and_stl_shares_nothing():
    hps = make_model("hps", _factory(), TASKS)
    stl = make_model("stl", _factory(), TASKS)
    assert {id(p) for p in hps.shared_parameters()} == {id(p) for p in hps.encoder.parameters()}
    assert list(stl.shared_parameters()) == []
    assert stl.num_parameters() > hps.num_parameters()


@pytest.mark.parametrize("arch", ["hps", "stl"])
def test_task_specific_parameters_only_get_their_own_gradient(arch):
    model = make_model(arch, _factory(), TASKS)
    x = torch.randn(4, 6)
    out = model(x)
    out["a"].sum().backward()
    for name in ("b", "c"):
        for p in model.heads[name].parameters():
            assert p.grad is None or torch.all(p.grad == 0)
    if arch == "stl":
        for p in model.encoders["b"].parameters():
            assert p.grad is None


def test_multi_input_forward_computes_only_given_tasks():
    model = make_model("hps", _factory(), TASKS)
    out = model({"a": torch.randn(2, 6), "c": torch.randn(7, 6)})
    assert set(out) == {"a", "c"} and out["c"].shape == (7, 1)


def test_unknown_architecture_suggests_a_name():
    with pytest.raises(ValueError, match="did you mean 'hps'"):
        make_model("hsp", _factory(), TASKS)
