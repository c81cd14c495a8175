"""The model's input layer: ``TabularInput`` (dense part + learned embeddings of code columns)
and ``WithInputLayer`` (one set of tables in front of any architecture, shared by every task)."""

from __future__ import annotations

import pytest
import torch
from models_testutil import CASE_IDS, CASES, TASKS
from torch import nn

from mtlkit.data import EmbeddingSpec
from mtlkit.models import make_encoder, make_model
from mtlkit.models.inputs import TabularInput, WithInputLayer, check_codes_on_host, codes_checked
from mtlkit.tasks import Task
from mtlkit.training import Trainer
from mtlkit.weighting import make_weighting, mtl_backward

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
N_DENSE = 3
SPECS = [EmbeddingSpec("city", 5, 2), EmbeddingSpec("user", 40, 4)]
WIDTH = N_DENSE + 2 + 4  # out_features


def rows(n: int = 32, seed: int = 0) -> torch.Tensor:
    """Preprocessed rows ``[3 dense | city code | user code]`` (codes as floats)."""
    g = torch.Generator().manual_seed(seed)
    dense = torch.randn(n, N_DENSE, generator=g)
    city = torch.randint(0, 5, (n, 1), generator=g).float()
    user = torch.randint(0, 40, (n, 1), generator=g).float()
    return torch.cat([dense, city, user], dim=1)


def targets(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Learnable targets of ``TASKS`` (a: 3 classes, b: regression, c: binary) from the rows."""
    z = x[:, :N_DENSE] + torch.stack([x[:, 3] / 5, x[:, 4] / 40, x[:, 3] * x[:, 4] / 200], 1)
    return {"a": z.argmax(1), "b": z[:, :1] - z[:, 1:2], "c": (z[:, 2:3] > 0.5).float()}


def wrapped(arch: str = "hps", options: dict | None = None, tasks=TASKS) -> WithInputLayer:
    layer = TabularInput(N_DENSE, SPECS)
    model = make_model(
        arch,
        lambda: make_encoder("mlp", (layer.out_features,), hidden=[8, 8]),
        list(tasks),
        **(options or {}),
    )
    return WithInputLayer(model, layer)


# ------------------------------------------------------------------------------ TabularInput
@pytest.mark.parametrize("device", DEVICES)
def test_output_is_dense_part_then_each_columns_embedding(device):
    layer = TabularInput(N_DENSE, SPECS).to(device)
    x = rows(16).to(device)
    out = layer(x)
    city, user = (t.weight for t in layer.embeddings)
    expected = torch.cat([x[:, :3], city[x[:, 3].long()], user[x[:, 4].long()]], dim=1)
    assert out.shape == (16, WIDTH) == (16, layer.out_features)
    assert out.device.type == device
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_codes_are_read_exactly_by_rounding():
    layer = TabularInput(0, [EmbeddingSpec("id", 2**20, 1)])
    codes = torch.tensor([[0.0], [3.0 - 2e-7], [1000.0 + 1e-4], [2.0**20 - 1]])
    assert layer.codes(codes).squeeze(1).tolist() == [0, 3, 1000, 2**20 - 1]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bad", [-1.0, 40.0, 41.0, 1e30, -1e30, float("nan"), float("inf")])
def test_a_code_outside_the_table_names_the_column(bad, device):
    layer = TabularInput(N_DENSE, SPECS).to(device)
    x = rows(8)
    x[5, 4] = bad
    with pytest.raises(
        ValueError, match=r"input column 'user': code .* \(batch row 5\) is outside \[0, 40\)"
    ):
        layer(x.to(device))


def test_a_batch_checked_on_the_host_names_the_column_of_a_bad_code():
    model = wrapped().to("meta")  # the check reads the CPU batch, never the device
    x = rows(8)
    assert check_codes_on_host(model, x) == [model.input_layer]
    assert check_codes_on_host(model, {"a": x, "b": rows(3)}) == [model.input_layer]
    x[6, 3] = 5.0
    with pytest.raises(ValueError, match=r"input column 'city': code 5 \(batch row 6\)"):
        check_codes_on_host(model, x)


def test_only_a_cpu_batch_of_a_wrapped_model_is_checked_on_the_host():
    x = rows(8)
    x[0, 4] = 40.0  # out of range, but not checked here
    assert check_codes_on_host(wrapped().to("meta"), x.to("meta")) == []
    assert check_codes_on_host(make_model("hps", lambda: nn.Linear(5, 4), TASKS), x) == []


def test_a_forward_on_a_host_checked_batch_reads_no_device_value():
    layer = TabularInput(N_DENSE, SPECS).to("meta")
    other = TabularInput(N_DENSE, SPECS).to("meta")
    x = rows(8).to("meta")
    with pytest.raises((RuntimeError, NotImplementedError), match="meta"):
        layer(x)  # the range check reads the codes on the host: a sync on CUDA
    with codes_checked([layer]):
        assert layer(x).shape == (8, WIDTH)
        with pytest.raises((RuntimeError, NotImplementedError), match="meta"):
            other(x)  # only the layers named are left unchecked
    with pytest.raises((RuntimeError, NotImplementedError), match="meta"):
        layer(x)


def test_inputs_of_the_wrong_width_are_refused():
    with pytest.raises(ValueError, match=r"expected inputs of shape \(N, 5\) \(3 dense \+ 2 code"):
        TabularInput(N_DENSE, SPECS)(torch.zeros(4, 6))


def test_a_dtype_that_cannot_hold_the_codes_is_refused():
    layer = TabularInput(1, [EmbeddingSpec("id", 5000, 2)])
    with pytest.raises(TypeError, match="float16 inputs cannot hold codes up to 4999 exactly"):
        layer(torch.zeros(2, 2, dtype=torch.float16))
    small = TabularInput(1, [EmbeddingSpec("id", 100, 2)]).to(torch.float16)
    assert small(torch.tensor([[0.5, 99.0]], dtype=torch.float16)).shape == (1, 3)


def test_sparse_gradients_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="sparse embedding gradients are not supported"):
        TabularInput(N_DENSE, SPECS, sparse=True)
    assert all(not t.sparse for t in TabularInput(N_DENSE, SPECS).embeddings)


def test_bad_specs_name_the_column():
    with pytest.raises(ValueError, match="column 'user': num_embeddings and dim must be >= 1"):
        TabularInput(2, [EmbeddingSpec("user", 10, 0)])


# ---------------------------------------------------------------------------- WithInputLayer
def _inputs_for(arch: str, x: torch.Tensor):
    return {t.name: x for t in TASKS} if arch == "multi_input" else x


@pytest.mark.parametrize(("arch", "options"), CASES, ids=CASE_IDS)
def test_one_set_of_tables_whatever_the_architecture(arch, options):
    torch.manual_seed(0)
    model = wrapped(arch, options)
    torch.manual_seed(0)
    bare = make_model(
        arch, lambda: make_encoder("mlp", (WIDTH,), hidden=[8, 8]), list(TASKS), **options
    )
    tables = 5 * 2 + 40 * 4
    assert model.num_parameters() == bare.num_parameters() + tables
    embedding_modules = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    assert len(embedding_modules) == 2
    shared = {id(p) for p in model.shared_parameters()}
    assert all(id(t.weight) in shared for t in embedding_modules)
    assert shared >= {id(p) for p in model.model.shared_parameters()}
    task_specific = {id(p) for p in model.task_specific_parameters()}
    assert task_specific == {id(p) for p in model.parameters()} - shared
    out = model(_inputs_for(arch, rows(6)))
    assert sorted(out) == ["a", "b", "c"]
    # every task's loss reaches the tables
    x = rows(32)
    y = targets(x)
    out = model(_inputs_for(arch, x))
    for task in TASKS:
        loss = task.compute_loss(out[task.name], y[task.name])
        grads = torch.autograd.grad(loss, [t.weight for t in embedding_modules], retain_graph=True)
        assert all(g.abs().sum() > 0 for g in grads), task.name


def _per_task_grads(model, x, y, params):
    out = model(x)
    losses = [t.compute_loss(out[t.name], y[t.name]) for t in TASKS]
    return losses, [torch.autograd.grad(loss, params, retain_graph=True) for loss in losses]


@pytest.mark.parametrize("arch", ["hps", "mmoe"])
def test_upgrad_combines_the_embeddings_gradients_with_the_rest_of_the_shared_ones(arch):
    model = wrapped(arch)
    x = rows(32)
    y = targets(x)
    shared = list(model.shared_parameters())
    _, grads = _per_task_grads(model, x, y, shared)
    jacobian = torch.stack([torch.cat([g.flatten() for g in task]) for task in grads])
    expected_weights = make_weighting("upgrad", 3)(jacobian @ jacobian.T)
    out = model(x)
    losses = [t.compute_loss(out[t.name], y[t.name]) for t in TASKS]
    weights = mtl_backward(losses, make_weighting("upgrad", 3), shared_params=shared)
    torch.testing.assert_close(weights, expected_weights, rtol=1e-4, atol=1e-6)
    for i, table in enumerate(model.input_layer.embeddings):
        combined = sum(w * task[i] for w, task in zip(expected_weights, grads, strict=True))
        torch.testing.assert_close(table.weight.grad, combined, rtol=1e-4, atol=1e-6)


def test_uw_gives_the_embeddings_the_weighted_sum_of_the_task_gradients():
    model = wrapped("mmoe")
    strategy = make_weighting("uw", 3)
    x = rows(32)
    y = targets(x)
    tables = [t.weight for t in model.input_layer.embeddings]
    _, grads = _per_task_grads(model, x, y, tables)
    out = model(x)
    losses = [t.compute_loss(out[t.name], y[t.name]) for t in TASKS]
    weights = mtl_backward(losses, strategy, shared_params=list(model.shared_parameters()))
    assert not torch.allclose(weights, torch.ones(3))  # uw's own weights, not a plain sum
    for i, table in enumerate(tables):
        combined = sum(w * task[i] for w, task in zip(weights, grads, strict=True))
        torch.testing.assert_close(table.grad, combined, rtol=1e-5, atol=1e-7)


def test_only_the_rows_of_the_batchs_codes_get_a_gradient():
    model = wrapped("hps")
    x = rows(8)
    y = targets(x)
    Trainer(model, TASKS, make_weighting("upgrad", 3)).train_step(x, y)
    user = model.input_layer.embeddings[1].weight.grad
    seen = set(x[:, 4].long().tolist())
    touched = {i for i in range(40) if user[i].abs().sum() > 0}
    assert touched == seen


def test_representation_mode_is_delegated_and_reaches_the_tables():
    assert not hasattr(wrapped("cross_stitch"), "forward_with_representation")
    assert hasattr(wrapped("mmoe"), "forward_with_representation")
    model = wrapped("hps")
    x = rows(32)
    y = targets(x)
    outputs, representation = model.forward_with_representation(x)
    torch.testing.assert_close(representation, model.model.encoder(model.input_layer(x)))
    torch.testing.assert_close(outputs["b"], model(x)["b"])
    strategy = make_weighting("upgrad", 3, mode="representation")
    trainer = Trainer(model, TASKS, strategy, torch.optim.SGD(model.parameters(), lr=0.0))
    trainer.train_step(x, y)
    # reference: UPGrad on the Jacobian w.r.t. r, its combination back-propagated to the tables
    outputs, r = model.forward_with_representation(x)
    losses = [t.compute_loss(outputs[t.name], y[t.name]) for t in TASKS]
    rows_r = torch.stack(
        [torch.autograd.grad(l, r, retain_graph=True)[0].flatten() for l in losses]
    )
    w = make_weighting("upgrad", 3)(rows_r @ rows_r.T)
    tables = [t.weight for t in model.input_layer.embeddings]
    expected = torch.autograd.grad(r, tables, (w @ rows_r).view_as(r))
    for table, grad in zip(tables, expected, strict=True):
        torch.testing.assert_close(table.grad, grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("arch", "options"), [("hps", {}), ("mmoe", {"num_experts": 2})])
def test_the_last_shared_layer_is_the_models(arch, options):
    model = wrapped(arch, options)
    assert [id(p) for p in model.last_shared_parameters()] == [
        id(p) for p in model.model.last_shared_parameters()
    ]
    name = "encoder.stages.0" if arch == "hps" else "shared_experts.0.0.stages.1"
    assert model.last_shared_parameters(name) == model.model.last_shared_parameters(name)
    tables = model.last_shared_parameters("input_layer")
    assert [id(p) for p in tables] == [id(p) for p in model.input_layer.parameters()]
    with pytest.raises(ValueError, match="has no module 'encoder.nope'"):
        model.last_shared_parameters("encoder.nope")
    strategy = make_weighting("gradnorm", 3)
    losses = Trainer(model, TASKS, strategy).train_step(rows(16), targets(rows(16)))
    assert losses is not None and torch.isfinite(losses).all()


def test_state_dict_round_trip_gives_the_same_outputs():
    torch.manual_seed(0)
    model = wrapped("mmoe")
    torch.manual_seed(1)
    other = wrapped("mmoe")
    x = rows(10)
    assert not torch.allclose(model(x)["b"], other(x)["b"])
    state = model.state_dict()
    assert {k.split(".")[0] for k in state} == {"input_layer", "model"}
    assert "input_layer.embeddings.1.weight" in state
    other.load_state_dict(state)
    for name, out in model(x).items():
        torch.testing.assert_close(other(x)[name], out, rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_model_moves_to_cuda_with_to():
    model = wrapped("ple").to("cuda")
    x = rows(16)
    out = model(x.cuda())
    expected = model.to("cpu")(x)
    for name in expected:
        torch.testing.assert_close(out[name].cpu(), expected[name], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------- transfer sees through it
def test_transfer_helpers_see_the_model_behind_the_input_layer():
    from mtlkit.models import transfer

    model = wrapped("mmoe", {"num_experts": 2})
    bare = model.model
    encoders = transfer.trunk_encoders(model)
    assert list(encoders) == [f"model.{name}" for name in transfer.trunk_encoders(bare)]
    assert all(not isinstance(m, TabularInput) for m in encoders.values())

    frozen = transfer.freeze_heads(model, ["a"])
    assert frozen and all(n.startswith("model.heads.a.") for n in frozen)
    transfer.unfreeze(model)
    frozen = set(transfer.freeze_trunk(model))
    names = {n for n, _ in model.named_parameters()}
    assert frozen == {n for n in names if not n.startswith("model.heads.")}
    assert "input_layer.embeddings.0.weight" in frozen
    transfer.unfreeze(model)
    frozen = transfer.freeze_trunk(model, stages=1)
    assert frozen and all(".stages.0." in n and n.startswith("model.") for n in frozen)
    transfer.unfreeze(model)

    x = rows(12)
    before = {k: v.detach() for k, v in model(x).items()}
    transfer.add_task(model, Task("d", "regression"))
    assert model.task_names == ["a", "b", "c", "d"]
    after = model(x)
    for name, out in before.items():
        torch.testing.assert_close(after[name], out, rtol=0, atol=0)
    new = transfer.new_task_parameters(model, ["d"])
    assert new == [f"model.{n}" for n in transfer.new_task_parameters(bare, ["d"])]
    assert "model.heads.d.weight" in new and not any("input_layer" in n for n in new)


def test_a_pretrained_encoder_loads_by_the_models_own_name():
    from mtlkit.models import transfer

    model = wrapped("hps")
    source = make_encoder("mlp", (WIDTH,), hidden=[8, 8])
    assert transfer.load_encoder(model, source.state_dict(), into="encoder") == ["model.encoder"]
    torch.testing.assert_close(
        model.model.encoder.stages[0][1].weight, source.stages[0][1].weight, rtol=0, atol=0
    )


def test_the_wrapped_model_traces_without_the_range_check():
    model = wrapped("mmoe").eval()
    x = rows(9)
    traced = torch.jit.trace(model, (x,), strict=False)
    for name, out in model(x).items():
        torch.testing.assert_close(traced(x)[name], out)


def test_the_wrapped_model_exports():
    model = wrapped("mmoe").eval()
    x = rows(9)
    exported = torch.export.export(model, (x,)).module()
    for name, out in model(x).items():
        torch.testing.assert_close(exported(x)[name], out)


def test_docstring_examples_run():
    import doctest

    import mtlkit.models.inputs as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
