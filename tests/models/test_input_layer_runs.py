"""``build_model`` puts the input layer in front of the architecture only for tables with code
columns, with the preprocessor's widths; a saved run rebuilds the same model and predicts the
same (``mtlkit.load`` and ``mtlkit predict``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import mtlkit
from mtlkit.cli.main import main
from mtlkit.config import from_dict
from mtlkit.config.schema import Config
from mtlkit.data import DatasetBundle, TabularPreprocessor
from mtlkit.models import make_encoder, make_model
from mtlkit.models.inputs import TabularInput, WithInputLayer
from mtlkit.runs import train_run
from mtlkit.runs.build import build_model
from mtlkit.tasks import Task

TASKS = [Task("clicked", "binary"), Task("spend", "regression")]


def _frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 2)), columns=["x1", "x2"])
    frame["city"] = rng.choice(["north", "south", "east"], n)  # 3 values: one-hot
    rows = rng.permutation(n)
    frame["user"] = [f"u{k % 30}" for k in rows]  # 30 values: an embedding
    frame["shop"] = [f"s{k % 60}" for k in rows]  # 60 values: an embedding
    effect = frame["user"].str[1:].astype(int) % 3 - 1
    frame["clicked"] = np.where(frame["x1"] + effect > 0, "yes", "no")
    frame["spend"] = 10 + 2 * frame["x2"] + effect
    return frame


def _bundle(pre: TabularPreprocessor, width: int) -> DatasetBundle:
    return DatasetBundle("t", list(TASKS), None, None, None, (width,), preprocessor=pre)  # type: ignore[arg-type]


def _config(arch: str, **options) -> Config:
    model = {"arch": arch, "arch_options": options, "encoder_options": {"hidden": [8]}}
    return from_dict(Config, {"model": model})


def _dim_rule(n: int) -> int:
    return min(32, round(1.6 * n**0.56))


@pytest.mark.parametrize(("arch", "options"), [("hps", {}), ("mmoe", {"num_experts": 3})])
def test_without_code_columns_the_model_is_the_bare_architecture(arch, options):
    pre = TabularPreprocessor(["x1", "x2"], ["city"]).fit(_frame())
    assert pre.embedding_specs == []
    torch.manual_seed(0)
    model = build_model(_config(arch, **options), _bundle(pre, pre.n_dense))
    torch.manual_seed(0)
    old = make_model(
        arch, lambda: make_encoder("mlp", (pre.n_dense,), hidden=[8]), list(TASKS), **options
    )
    assert type(model) is type(old)
    assert list(model.state_dict()) == list(old.state_dict())
    for key, value in old.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.parametrize(("arch", "options"), [("hps", {}), ("ple", {"num_levels": 2})])
def test_the_preprocessors_widths_reach_the_model(arch, options):
    pre = TabularPreprocessor(["x1", "x2"], ["city", "user", "shop"], embedding_dim={"shop": 5})
    pre.fit(_frame())
    model = build_model(_config(arch, **options), _bundle(pre, pre.n_dense + 2))
    assert isinstance(model, WithInputLayer)
    layer = model.input_layer
    assert isinstance(layer, TabularInput)
    assert layer.columns == ["user", "shop"]
    assert layer.num_embeddings == [31, 61]  # the kept values and code 0 ("other")
    assert layer.dims == [_dim_rule(31), 5]  # default rule; data.embedding_dim override
    assert layer.n_dense == pre.n_dense == 2 + 3
    encoders = [m for m in model.model.modules() if hasattr(m, "input_shape")]
    assert encoders and all(m.input_shape == (5 + _dim_rule(31) + 5,) for m in encoders)
    x = torch.as_tensor(pre.transform(_frame(7, seed=1)))
    assert model(x)["spend"].shape == (7, 1)


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("embedded")
    _frame(240).to_csv(folder / "t.csv", index=False)
    config = from_dict(
        Config,
        {
            "data": {
                "path": str(folder / "t.csv"),
                "tasks": [
                    {"name": "clicked", "kind": "binary"},
                    {"name": "spend", "kind": "regression"},
                ],
                "batch_size": 32,
                "embedding_dim": {"shop": 5},
            },
            "model": {"arch": "mmoe", "arch_options": {"num_experts": 2}},
            "weighting": {"name": "upgrad"},
            "training": {"epochs": 1, "progress": False},
        },
    )
    result = train_run(config, folder / "run")
    return folder, result


def test_a_saved_run_rebuilds_the_same_model_and_predicts_the_same(embedded_run, tmp_path):
    folder, result = embedded_run
    run = mtlkit.load(folder / "run")
    assert isinstance(run.model, WithInputLayer)
    assert run.model.input_layer.columns == ["user", "shop"]
    assert run.model.input_layer.dims == [_dim_rule(31), 5]  # data.embedding_dim reaches it
    saved = torch.load(folder / "run" / "model.pt")
    loaded = run.model.state_dict()
    assert list(loaded) == list(saved) and any(k.startswith("input_layer.") for k in saved)
    for key, value in saved.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)

    new = _frame(25, seed=3)
    new.loc[0, "user"] = "never seen"  # code 0, the "other" row
    trained = result.model.cpu().eval()
    with torch.no_grad():
        out = trained(torch.as_tensor(result.bundle.preprocessor.transform(new)))
    mean, std = run.target_scaling["spend"]
    table = run.predict(new)
    np.testing.assert_allclose(
        table["spend"], out["spend"].squeeze(1).numpy() * std + mean, rtol=1e-5
    )
    new.drop(columns=["clicked", "spend"]).to_csv(tmp_path / "in.csv", index=False)
    argv = ["predict", str(folder / "run"), "--input", str(tmp_path / "in.csv")]
    assert main([*argv, "--output", str(tmp_path / "out.csv")]) == 0
    cli = pd.read_csv(tmp_path / "out.csv")
    np.testing.assert_allclose(cli["spend"], table["spend"], rtol=1e-5)
    assert list(cli["clicked"]) == list(table["clicked"])


def test_init_from_adds_a_task_behind_the_input_layer(tmp_path):
    _frame(160).to_csv(tmp_path / "t.csv", index=False)
    data = {
        "path": str(tmp_path / "t.csv"),
        "tasks": [{"name": "clicked", "kind": "binary"}, {"name": "spend", "kind": "regression"}],
        "batch_size": 32,
    }
    common = {"data": data, "model": {"arch": "hps"}, "training": {"epochs": 1, "progress": False}}
    old = train_run(from_dict(Config, {**common, "select_tasks": ["clicked"]}), tmp_path / "old")
    model = {"arch": "hps", "init_from": str(tmp_path / "old"), "freeze": "old_heads"}
    new = train_run(from_dict(Config, {**common, "model": model}), tmp_path / "new")
    assert isinstance(new.model, WithInputLayer) and new.model.task_names == ["clicked", "spend"]
    assert new.transfer.new_tasks == ["spend"]
    before, after = old.model.state_dict(), new.model.state_dict()
    for key in ("model.heads.clicked.weight", "model.heads.clicked.bias"):
        torch.testing.assert_close(after[key].cpu(), before[key].cpu(), rtol=0, atol=0)
    table = "input_layer.embeddings.0.weight"
    assert not torch.equal(after[table].cpu(), before[table].cpu())  # the trunk trained on


def test_stl_gives_each_task_its_own_tables():
    """STL is the Δm baseline: nothing shared, the embedding tables included."""
    pre = TabularPreprocessor(["x1", "x2"], ["city", "user", "shop"]).fit(_frame())
    model = build_model(_config("stl"), _bundle(pre, pre.n_dense + 2))
    assert not isinstance(model, WithInputLayer)
    tables = {n: m.weight for n, m in model.named_modules() if isinstance(m, torch.nn.Embedding)}
    assert len(tables) == 2 * len(TASKS)
    assert list(model.shared_parameters()) == []
    out = model(torch.as_tensor(pre.transform(_frame(16, seed=2))))
    for task in TASKS:
        grads = torch.autograd.grad(
            out[task.name].sum(), list(tables.values()), retain_graph=True, allow_unused=True
        )
        reached = {name for name, g in zip(tables, grads, strict=True) if g is not None}
        assert reached == {f"encoders.{task.name}.input_layer.embeddings.{i}" for i in (0, 1)}
