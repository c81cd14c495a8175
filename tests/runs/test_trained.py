"""``mtlkit.load(run_dir)``: predict, evaluate and export agree with the model and the labels."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest
import torch

import mtlkit
from mtlkit.config import ConfigError, from_dict
from mtlkit.config.schema import Config
from mtlkit.runs import train_run


def _table(n: int = 160, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    score = x @ np.array([1.0, -0.5, 0.3]) + 0.1 * rng.normal(size=n)
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["city"] = rng.choice(["x", "y", "z"], n)
    frame["grade"] = np.select([score < -0.5, score < 0.5], ["C", "B"], "A")
    frame["passed"] = np.where(score > 0, "yes", "no")
    frame["score"] = score * 10 + 50
    frame.loc[rng.random(n) < 0.1, "b"] = np.nan
    return frame


TASKS = [
    {"name": "grade", "kind": "multiclass", "column": "grade"},
    {"name": "passed", "kind": "binary", "column": "passed"},
    {"name": "score", "kind": "regression", "column": "score"},
]


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("table")
    _table().to_csv(folder / "t.csv", index=False)
    config = from_dict(
        Config,
        {
            "data": {"path": str(folder / "t.csv"), "tasks": TASKS, "batch_size": 32},
            "training": {"epochs": 2, "progress": False},
        },
    )
    train_run(config, folder / "run")
    return mtlkit.load(folder / "run")


@pytest.fixture(scope="module")
def builtin_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("builtin")
    config = from_dict(
        Config,
        {
            "data": {"dataset": "synthetic", "options": {"n_samples": 200}},
            "training": {"epochs": 1, "progress": False},
        },
    )
    train_run(config, folder / "run")
    return mtlkit.load(folder / "run")


def test_predict_applies_preprocessing_and_unscaling(table_run):
    frame = _table(40, seed=1)
    table = table_run.predict(frame, all_probabilities=True)
    outputs = table_run.model(torch.as_tensor(table_run.preprocessor.transform(frame)))
    mean, std = table_run.target_scaling["score"]
    expected_score = outputs["score"].detach().squeeze(-1).numpy() * std + mean
    np.testing.assert_allclose(table["score"].to_numpy(), expected_score, rtol=1e-5)
    grade = table_run.tasks[0]
    probs = torch.softmax(outputs["grade"].detach(), dim=1).numpy()
    assert list(table["grade"]) == [grade.class_names[k] for k in probs.argmax(1)]
    np.testing.assert_allclose(table["grade_probability"], probs.max(1), rtol=1e-5)
    for k, name in enumerate(grade.class_names):
        np.testing.assert_allclose(table[f"grade_probability={name}"], probs[:, k], rtol=1e-5)
    assert list(table.index) == list(frame.index)


def test_predict_on_features_equals_predict_on_the_table(table_run):
    frame = _table(30, seed=2)
    pd.testing.assert_frame_equal(
        table_run.predict(table_run.features(frame)),
        table_run.predict(frame).reset_index(drop=True),
    )


def test_evaluate_a_frame_matches_the_predictions_and_the_file(table_run, tmp_path):
    frame = _table(50, seed=3)
    results = table_run.evaluate(frame)
    predicted = table_run.predict(frame)
    accuracy = float((predicted["grade"] == frame["grade"]).mean())
    assert results["grade"]["accuracy"] == pytest.approx(accuracy)
    mae = float((predicted["score"] - frame["score"]).abs().mean())
    assert results["score"]["mae"] == pytest.approx(mae, rel=1e-4)
    frame.to_csv(tmp_path / "new.csv", index=False)
    assert table_run.evaluate(tmp_path / "new.csv") == results


def test_a_frame_reads_the_runs_na_values_as_predict_on_its_file_does(tmp_path):
    """A numeric NA token (here -999) in a DataFrame is missing for predict and evaluate."""
    from mtlkit.data.table import read_table

    frame = _table(120, seed=4)
    frame.loc[frame["b"].isna(), "b"] = -999.0
    frame.to_csv(tmp_path / "t.csv", index=False)
    config = from_dict(
        Config,
        {
            "data": {"path": str(tmp_path / "t.csv"), "tasks": TASKS, "na_values": ["-999"]},
            "training": {"epochs": 1, "progress": False},
        },
    )
    train_run(config, tmp_path / "run")
    run = mtlkit.load(tmp_path / "run")
    assert run.preprocessor.indicators == ["b"]
    frame.index = frame.index + 100
    from_file = run.predict(read_table(tmp_path / "t.csv", ["-999"]))
    predicted = run.predict(frame)
    assert list(predicted.index) == list(frame.index)
    pd.testing.assert_frame_equal(predicted.reset_index(drop=True), from_file)
    assert run.evaluate(frame) == run.evaluate(tmp_path / "t.csv")


def test_evaluate_without_data_scores_the_runs_test_split(table_run):
    results = table_run.evaluate()
    assert set(results) == {"grade", "passed", "score"}
    assert results != table_run.evaluate(split="train")


@pytest.mark.parametrize("fmt", ["torchscript", "export"])
def test_exported_model_gives_the_predictions(table_run, tmp_path, fmt):
    path = table_run.export(tmp_path / f"model.{fmt}", format=fmt)
    if fmt == "torchscript":
        served = torch.jit.load(str(path))
    else:
        served = torch.export.load(str(path)).module()
    frame = _table(7, seed=4)  # another batch size than the example used to export
    outputs = served(table_run.features(frame))
    table = table_run.predict(frame, all_probabilities=True)
    np.testing.assert_allclose(outputs["score"].numpy(), table["score"], rtol=1e-5)
    np.testing.assert_allclose(
        outputs["passed"].numpy(), table["passed_probability=yes"], rtol=1e-5
    )
    for k, name in enumerate(table_run.tasks[0].class_names):
        np.testing.assert_allclose(
            outputs["grade"][:, k], table[f"grade_probability={name}"], rtol=1e-5
        )


def test_builtin_run_predicts_from_a_tensor_and_evaluates_its_split(builtin_run):
    x = torch.randn(5, *builtin_run.input_shape)
    table = builtin_run.predict(x)
    assert len(table) == 5
    outputs = builtin_run.model(x)
    for task in builtin_run.tasks:
        if task.kind == "regression":
            mean, std = builtin_run.target_scaling.get(task.name, (0.0, 1.0))
            expected = outputs[task.name].detach().squeeze(-1).numpy() * std + mean
            np.testing.assert_allclose(table[task.name], expected, rtol=1e-5)
    assert set(builtin_run.evaluate()) == set(builtin_run.task_names)


def test_bad_inputs_are_one_line_errors_naming_the_culprit(table_run, builtin_run, tmp_path):
    with pytest.raises(ConfigError, match="lacks feature column.*city"):
        table_run.predict(_table(5).drop(columns="city"))
    with pytest.raises(ConfigError, match="not trained on tabular data"):
        builtin_run.predict(_table(5))
    with pytest.raises(ConfigError, match="not trained on a table"):
        builtin_run.evaluate(_table(5))
    with pytest.raises(ConfigError, match="format must be one of torchscript, export"):
        table_run.export(tmp_path / "m", format="onnx")
    with pytest.raises(ConfigError, match="has no config.yaml"):
        mtlkit.load(tmp_path)


def test_predict_file_refuses_an_output_among_its_input_files(table_run, tmp_path):
    """A directory input whose file is also the output: an error, the input file untouched."""
    folder = tmp_path / "rows"
    folder.mkdir()
    _table(20, seed=1).drop(columns=["grade", "passed", "score"]).to_csv(
        folder / "a.csv", index=False
    )
    _table(20, seed=2).drop(columns=["grade", "passed", "score"]).to_csv(
        folder / "b.csv", index=False
    )
    before = (folder / "b.csv").read_bytes()
    with pytest.raises(ConfigError, match="is one of the input files"):
        table_run.predict_file(folder, folder / "b.csv")
    assert (folder / "b.csv").read_bytes() == before
    assert table_run.predict_file(folder, tmp_path / "p.csv")["rows"] == 40


@pytest.mark.parametrize(("fmt", "writer"), [("torchscript", "jit"), ("export", "export")])
def test_an_export_cut_short_leaves_the_old_file_whole(
    table_run, tmp_path, monkeypatch, fmt, writer
):
    path = tmp_path / "model.pt"
    path.write_bytes(b"the previous export")
    module = getattr(torch, writer)
    save = module.save

    def save_half(obj, f, *args, **kwargs):
        with open(f, "wb") if isinstance(f, str) else contextlib.nullcontext(f) as handle:
            handle.write(b"half an archive")
        raise KeyboardInterrupt  # Ctrl-C in the middle of the write

    monkeypatch.setattr(module, "save", save_half)
    with pytest.raises(KeyboardInterrupt):
        table_run.export(path, format=fmt)
    assert path.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temporary file left
    monkeypatch.setattr(module, "save", save)
    table_run.export(path, format=fmt)
    assert path.read_bytes() != b"the previous export"


def test_predict_names_what_is_wrong_with_a_table_it_cannot_read(table_run):
    """An empty table, a duplicated column and an array/dict instead of a DataFrame died on
    torch's reshape or pandas' AttributeError."""
    frame = _table(5)
    with pytest.raises(ValueError, match="predict: the table has no rows"):
        table_run.predict(frame.head(0))
    with pytest.raises(ValueError, match="predict: duplicate column 'city'"):
        table_run.predict(pd.concat([frame, frame[["city"]]], axis=1))
    for data in (frame.to_numpy(), frame.to_dict("list")):
        with pytest.raises(TypeError, match="predict: expected a pandas DataFrame .* or a Tensor"):
            table_run.predict(data)


def test_evaluate_names_what_is_wrong_with_a_table_it_cannot_read(table_run):
    frame = _table(5)
    with pytest.raises(ValueError, match="evaluate: the table has no rows"):
        table_run.evaluate(frame.head(0))
    with pytest.raises(ValueError, match="evaluate: duplicate column 'city'"):
        table_run.evaluate(pd.concat([frame, frame[["city"]]], axis=1))
    with pytest.raises(TypeError, match="evaluate: expected a pandas DataFrame"):
        table_run.evaluate(frame.to_dict("list"))
