import numpy as np
import pandas as pd
import pytest
import torch

from mtlkit.data.table import DataError, TableTask, label_report, load_table, split_rows
from mtlkit.tasks import IGNORE_INDEX


def _frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "x": x,
            "color": rng.choice(["red", "blue"], n),
            "kind": np.where(x > 0.3, "b", np.where(x < -0.3, "a", "c")),
            "flag": np.where(x > 0, "yes", "no"),
            "y": 3 * x + 10,
        }
    )


TASKS = [
    TableTask("kind", "multiclass", ["kind"]),
    TableTask("flag", "binary", ["flag"]),
    TableTask("y", "regression", ["y"]),
]


def test_csv_and_parquet_give_the_same_bundle(tmp_path):
    frame = _frame()
    frame.loc[[1, 2], "y"] = None
    frame.loc[[3], "flag"] = None
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    a = load_table(tmp_path / "d.csv", TASKS, id_column="id")
    b = load_table(tmp_path / "d.parquet", TASKS, id_column="id")
    assert torch.allclose(a.train.inputs, b.train.inputs)
    assert a.preprocessor.feature_names == ["x", "color=blue", "color=red"]
    assert a.task("kind").class_names == ["a", "b", "c"]
    assert a.task("flag").class_names == ["no", "yes"]
    ys = torch.cat([a.train.targets["y"], a.val.targets["y"], a.test.targets["y"]])
    assert int(torch.isnan(ys).sum()) == 2
    flags = torch.cat([a.train.targets["flag"], a.val.targets["flag"], a.test.targets["flag"]])
    assert int((flags == IGNORE_INDEX).sum()) == 1


def test_label_report_counts_and_balances(tmp_path):
    _frame().to_csv(tmp_path / "d.csv", index=False)
    bundle = load_table(tmp_path / "d.csv", TASKS, id_column="id")
    lines = label_report(bundle)
    assert "classes no=" in lines[1] and "labelled train" in lines[0]
    assert "range [" in lines[2]


def test_splits_random_stratified_and_by_column():
    train, val, test = split_rows(100, "random", 0.2, 0.1, seed=0)
    assert (len(train), len(val), len(test)) == (70, 20, 10)
    assert len(set(train) | set(val) | set(test)) == 100
    strata = np.repeat([0, 1], [80, 20])
    train, val, test = split_rows(100, "stratified", 0.25, 0.25, seed=1, strata=strata)
    assert (strata[test] == 1).sum() == 5 and (strata[val] == 1).sum() == 5
    column = pd.Series(["train", "val", "test", "TRAIN "])
    train, val, test = split_rows(4, "column", 0, 0, 0, split_column=column)
    assert train.tolist() == [0, 3] and val.tolist() == [1] and test.tolist() == [2]
    with pytest.raises(DataError, match="found 'dev'"):
        split_rows(1, "column", 0, 0, 0, split_column=pd.Series(["dev"]))


def test_split_is_seeded(tmp_path):
    _frame().to_csv(tmp_path / "d.csv", index=False)
    a = load_table(tmp_path / "d.csv", TASKS, seed=3)
    b = load_table(tmp_path / "d.csv", TASKS, seed=3)
    c = load_table(tmp_path / "d.csv", TASKS, seed=4)
    assert torch.equal(a.test.inputs, b.test.inputs)
    assert not torch.equal(a.test.inputs, c.test.inputs)


def test_multilabel_from_joined_columns(tmp_path):
    frame = _frame()
    frame["t1"] = (frame["x"] > 0).astype(int)
    frame["t2"] = (frame["x"] < 1).astype(float)
    frame.loc[0, "t2"] = None
    frame.to_csv(tmp_path / "d.csv", index=False)
    bundle = load_table(
        tmp_path / "d.csv", [TableTask("tags", "multilabel", ["t1", "t2"])], features=["x"]
    )
    task = bundle.task("tags")
    assert task.num_outputs == 2 and task.class_names == ["t1", "t2"]


@pytest.mark.parametrize(
    "mutate, tasks, kwargs, message",
    [
        (
            lambda f: f.assign(y=f["y"].astype(object).where(f.index != 4, "twelve")),
            TASKS,
            {},
            r"task 'y': column 'y', line 6 of '.*d.csv': non-numeric value 'twelve'",
        ),
        (
            lambda f: f,
            [TableTask("z", "regression", ["zz"])],
            {},
            "task 'z': column 'zz' is not in",
        ),
        (lambda f: f.assign(flag="yes"), TASKS, {}, "task 'flag': needs at least 2 classes"),
        (lambda f: f.assign(y=None), TASKS, {}, "task 'y': no labelled rows"),
        (lambda f: f, [TableTask("kind", "binary", ["kind"])], {}, "binary task needs at most 2"),
        (
            lambda f: f,
            TASKS,
            {"features": ["x", "colour"]},
            "data.features: column 'colour' is not in .*did you mean 'color'",
        ),
        (
            lambda f: f.assign(x=f["x"].astype(object).where(f.index != 7, "abc")),
            TASKS,
            {},
            "feature column 'x', line 9 of .*: non-numeric value 'abc'",
        ),
        (lambda f: f, TASKS, {"split": "stratified"}, "data.stratify: name the task"),
        (lambda f: f, TASKS, {"features": ["x", "y"]}, "column 'y' is also a task's target"),
    ],
)
def test_bad_tables_name_what_is_wrong(tmp_path, mutate, tasks, kwargs, message):
    mutate(_frame()).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=message):
        load_table(tmp_path / "d.csv", tasks, **kwargs)


def test_missing_empty_and_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_table(tmp_path / "none.csv", TASKS)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="is empty"):
        load_table(tmp_path / "empty.csv", TASKS)
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="no data rows"):
        load_table(tmp_path / "header.csv", TASKS)
    (tmp_path / "bad.csv").write_text('a,b\n1,"2\n3,4,5,6\n')
    with pytest.raises(DataError, match="cannot be read"):
        load_table(tmp_path / "bad.csv", TASKS)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="cannot be read"):
        load_table(tmp_path / "bad.parquet", TASKS)


def test_a_50000_value_column_becomes_one_embedding_code_column(tmp_path):
    rng = np.random.default_rng(0)
    n = 100_000
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "color": rng.choice(["red", "blue"], n),
            "user": np.arange(n) % 50_000,  # 50,000 values, ~45,000 in the training rows
            "y": rng.normal(size=n),
        }
    )
    frame.to_parquet(tmp_path / "d.parquet")
    bundle = load_table(
        tmp_path / "d.parquet",
        [TableTask("y", "regression", ["y"])],
        categorical=["user"],
        encoder_options={"max_categories": 40_000},
    )
    pre = bundle.preprocessor
    assert pre.encoders == {"color": "onehot", "user": "embedding"}
    assert pre.feature_names == ["x", "color=blue", "color=red", "user__code"]
    (spec,) = pre.embedding_specs
    assert (spec.column, spec.num_embeddings, spec.dim) == ("user", 40_001, 32)
    assert bundle.input_shape == (pre.n_dense + 1,) == (4,)
    codes = bundle.train.inputs[:, 3]
    assert codes.min() >= 0 and codes.max() == 40_000 and torch.equal(codes, codes.round())
    assert pre.notes[0].startswith("user: ") and "kept the 40,000 most frequent" in pre.notes[0]


def test_label_report_names_a_class_without_training_rows(tmp_path):
    """A class seen only in val/test is one of the task's classes (the whole column's) but the
    model never trains on it; the report said nothing of it."""
    frame = _frame().assign(part=["train"] * 40 + ["val"] * 10 + ["test"] * 10)
    frame.loc[55, "kind"] = "d"
    frame.to_csv(tmp_path / "d.csv", index=False)
    bundle = load_table(
        tmp_path / "d.csv", TASKS, id_column="id", split="column", split_column="part"
    )
    assert bundle.task("kind").class_names == ["a", "b", "c", "d"]
    kind, flag = label_report(bundle)[:2]
    assert kind.endswith("; no training row: d"), kind
    assert "no training row" not in flag
