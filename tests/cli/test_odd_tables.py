"""A corpus of odd tables and command lines for ``train``, ``predict`` and ``evaluate``.

Every case ends either in success with the right result (checked), or in exit code 2 with ONE
line on stderr that names the culprit (column, line, task, flag or file), no traceback, and
nothing written. The CLI runs in-process on tiny tables for one epoch. Add a case by adding a
row to one of the tables below.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from mtlkit.cli.main import main
from mtlkit.data.table import split_rows

TASKS = ["--task", "grade:multiclass:grade", "--task", "passed:binary:passed"]
TASKS += ["--task", "score:regression:score"]
QUICK = ["--epochs", "1", "--batch-size", "16", "--no-progress"]
PANDAS_NA_TOKENS = ["NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "#N/A", "<NA>"]
NON_FINITE = {  # cell text: how the error shows the value
    "inf": "non-finite value inf",
    "-inf": "non-finite value -inf",
    "Infinity": "non-finite value inf",
    "1e400": "non-finite value inf",
    "1e39": "value overflowing float32 1e+39",
    "-3.5e38": "value overflowing float32 -3.5e+38",
}


def _frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """A small table: id, numeric a/b, categorical city, and three targets."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n).round(3), rng.normal(size=n).round(3)
    score = (2 * a - b).round(3)
    return pd.DataFrame(
        {
            "id": np.arange(100, 100 + n),
            "a": a,
            "b": b,
            "city": np.array(["x", "y", "z"])[np.arange(n) % 3],
            "grade": np.select([score < -0.7, score < 0.7], ["C", "B"], "A"),
            "passed": np.where(score > 0, "yes", "no"),
            "score": score * 10 + 50,
        }
    )


def _set(frame: pd.DataFrame, column: str, rows, value) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = frame[column].astype(object)
    frame.loc[rows, column] = value
    return frame


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_:  # argparse
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def _assert_clean_error(result, command: str, *culprits: str) -> str:
    code, _, err = result
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"mtlkit {command}: error: "), err
    assert "Traceback" not in err
    for culprit in culprits:
        assert culprit in lines[0], (culprit, lines[0])
    return lines[0]


def _train(path: Path, out: Path, *extra: str, tasks=TASKS):
    return _cli("train", "--data", path, *tasks, *QUICK, "--out", out, *extra)


# ------------------------------------------------------------------- bad tables for train
def _csv_text(text: str) -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        (tmp / "d.csv").write_text(text)
        return tmp / "d.csv"

    return write


def _csv_bytes(data: bytes) -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        (tmp / "d.csv").write_bytes(data)
        return tmp / "d.csv"

    return write


def _csv(frame_fn: Callable[[], pd.DataFrame]) -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        frame_fn().to_csv(tmp / "d.csv", index=False)
        return tmp / "d.csv"

    return write


def _csv_lines(edit: Callable[[list[str]], list[str]]) -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        lines = _frame().to_csv(index=False).splitlines()
        (tmp / "d.csv").write_text("\n".join(edit(lines)) + "\n")
        return tmp / "d.csv"

    return write


def _parquet(table_fn: Callable[[], pa.Table]) -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        pq.write_table(table_fn(), tmp / "d.parquet")
        return tmp / "d.parquet"

    return write


def _arrow(**extra) -> pa.Table:
    table = pa.Table.from_pandas(_frame(), preserve_index=False)
    for name, values in extra.items():
        table = table.append_column(name, values)
    return table


def _rename_header(old: str, new: str):
    return _csv_lines(lambda lines: [lines[0].replace(old, new, 1), *lines[1:]])


def _edit_line(i: int, fn: Callable[[str], str]):
    return _csv_lines(lambda lines: [fn(s) if k == i else s for k, s in enumerate(lines)])


BAD_TABLES = [
    # header
    ("duplicate target", _rename_header("b,", "score,"), [], ["duplicate column 'score'"]),
    ("duplicate feature", _rename_header("b,", "a,"), [], ["duplicate column 'a'"]),
    ("duplicate after strip", _rename_header("b,", " a ,"), [], ["duplicate column 'a'"]),
    ("empty header name", _rename_header("b,", ","), [], ["column 3 of the header has no name"]),
    ("blank header name", _rename_header("b,", "  ,"), [], ["column 3 of the header has no name"]),
    ("empty first name", _rename_header("id,", ","), [], ["column 1 of the header has no name"]),
    # field counts
    ("extra field", _edit_line(5, lambda s: s + ",7"), [], ["line 6: 8 fields", "has 7"]),
    ("missing field", _edit_line(3, lambda s: s.rsplit(",", 1)[0]), [], ["line 4: 6 fields"]),
    (
        "extra field on every row",
        _csv_lines(lambda lines: [lines[0]] + [s + ",1" for s in lines[1:]]),
        [],
        ["line 2: 8 fields"],
    ),
    (
        "trailing comma on every row",
        _csv_lines(lambda lines: [lines[0]] + [s + "," for s in lines[1:]]),
        [],
        ["line 2: 8 fields"],
    ),
    ("short last row", _csv_lines(lambda lines: [*lines, "999,1.0"]), [], ["line 42: 2 fields"]),
    ("not utf-8", _csv_bytes(b"a,b\n\xff\xfe,1\n"), [], ["not UTF-8"]),
    # pandas' NA strings are values: errors in numeric columns, with the --na-values hint
    *[
        (
            f"{token} in numeric feature",
            _csv(lambda token=token: _set(_frame(), "a", 6, token)),
            [],
            ["column 'a'", "line 8", repr(token), f"--na-values {token}"],
        )
        for token in PANDAS_NA_TOKENS
    ],
    *[
        (
            f"{token} in regression target",
            _csv(lambda token=token: _set(_frame(), "score", 3, token)),
            [],
            ["task 'score'", "line 5", repr(token)],
        )
        for token in PANDAS_NA_TOKENS[:5]
    ],
    # non-finite and float32-overflowing numbers
    *[
        (
            f"{token} in feature",
            _csv(lambda token=token: _set(_frame(), "b", 9, token)),
            [],
            ["feature column 'b'", "line 11", shown],
        )
        for token, shown in NON_FINITE.items()
    ],
    *[
        (
            f"{token} in target",
            _csv(lambda token=token: _set(_frame(), "score", 2, token)),
            [],
            ["task 'score'", "line 4", shown],
        )
        for token, shown in NON_FINITE.items()
    ],
    # a mostly numeric column with words
    (
        "words in numeric feature",
        _csv(lambda: _set(_frame(), "a", [2, 5, 8], "missing")),
        [],
        ["feature column 'a'", "line 4", "'missing'", "3 such cells", "data.categorical"],
    ),
    (
        "unit suffix in numeric feature",
        _csv(lambda: _set(_frame(), "b", 0, "12kg")),
        [],
        ["feature column 'b'", "line 2", "'12kg'"],
    ),
    (
        "multilabel not 0/1",
        _csv(lambda: _set(_frame().assign(t=1), "t", 4, 2)),
        ["--task", "tags:multilabel:t+t2"],
        ["task 'tags'", "'t2' is not in"],
    ),
    (
        "multilabel value 2",
        _csv(lambda: _set(_frame().assign(t=1, u=0), "t", 4, 2)),
        ["--task", "tags:multilabel:t+u"],
        ["task 'tags'", "column 't'", "line 6", "0/1"],
    ),
    (
        "multilabel NA",
        _csv(lambda: _set(_frame().assign(t=1, u=0), "u", 7, "NA")),
        ["--task", "tags:multilabel:t+u"],
        ["task 'tags'", "column 'u'", "line 9", "'NA'"],
    ),
    (
        "split column with an empty cell",
        _csv(lambda: _set(_frame().assign(part="train"), "part", 3, None)),
        ["--split", "column", "--split-column", "part"],
        ["data.split_column", "found ''"],
    ),
    (
        "split column with dev",
        _csv(lambda: _set(_frame().assign(part="train"), "part", 3, "dev")),
        ["--split", "column", "--split-column", "part"],
        ["data.split_column", "'dev'"],
    ),
    # Parquet
    (
        "parquet list column",
        _parquet(lambda: _arrow(tags=pa.array([[1, 2]] * 40))),
        [],
        ["column 'tags' is nested"],
    ),
    (
        "parquet struct column",
        _parquet(lambda: _arrow(pos=pa.array([{"x": 1, "y": 2}] * 40))),
        [],
        ["column 'pos' is nested"],
    ),
    (
        "parquet duplicate column",
        _parquet(lambda: _arrow(a=pa.array(np.zeros(40)))),
        [],
        ["duplicate column 'a'"],
    ),
    (
        "parquet inf feature",
        _parquet(lambda: _arrow(c=pa.array([1.0] * 39 + [np.inf]))),
        [],
        ["feature column 'c'", "row 40 of", "inf"],
    ),
    (
        "parquet float32 overflow target",
        _parquet(
            lambda: pa.Table.from_pandas(_set(_frame(), "score", 0, 1e39).astype({"score": float}))
        ),
        [],
        ["task 'score'", "row 1 of", "overflowing float32"],
    ),
    (
        "parquet NA string in numeric-looking text column",
        _parquet(lambda: _arrow(c=pa.array(["1"] * 39 + ["NA"]))),
        [],
        ["feature column 'c'", "'NA'", "--na-values NA"],
    ),
    (
        "parquet empty column name",
        _parquet(lambda: _arrow(**{"": pa.array(np.zeros(40))})),
        [],
        ["column 8 of the header has no name"],
    ),
]


@pytest.mark.parametrize(
    "make, extra, culprits", [c[1:] for c in BAD_TABLES], ids=[c[0] for c in BAD_TABLES]
)
def test_bad_table_is_one_clean_error(tmp_path, make, extra, culprits):
    path = make(tmp_path)
    out = tmp_path / "run"
    tasks = TASKS if "--task" not in extra else []
    _assert_clean_error(_train(path, out, *extra, tasks=tasks), "train", *culprits)
    assert not out.exists(), "a failed run must write nothing"


# --------------------------------------------------------------------- odd flags for train
BAD_FLAGS = [
    (["--categorical", "grade"], ["data.categorical", "'grade'", "target"]),
    (["--categorical", "score"], ["data.categorical", "'score'", "target"]),
    (["--categorical", "id", "--id-column", "id"], ["data.categorical", "'id'"]),
    (
        ["--features", "a,b", "--categorical", "city"],
        ["data.categorical", "'city'", "not a feature"],
    ),
    (["--features", "a,id", "--id-column", "id"], ["data.features", "'id'", "id_column"]),
    (["--features", "a,a,b"], ["data.features", "'a'", "twice"]),
    (["--features", "a,passed"], ["data.features", "'passed'", "target"]),
    (["--id-column", "score"], ["data.id_column", "'score'", "target"]),
    (["--id-column", "nope"], ["data.id_column", "'nope'"]),
    (["--split", "stratified", "--stratify", "score"], ["data.stratify", "'score'", "regression"]),
    (["--split", "stratified", "--stratify", "nope"], ["data.stratify", "'nope'"]),
    (["--split", "stratified"], ["data.stratify"]),
    (["--split", "column", "--split-column", "grade"], ["data.split_column", "'grade'", "target"]),
    (["--split", "column"], ["data.split_column"]),
    (["--split", "sideways"], ["data.split", "'sideways'"]),
    (["--set", "data.max_categories=0"], ["data.max_categories", "expected", "got 0"]),
    (["--set", f"data.max_categories={2**24}"], ["data.max_categories", "16777215"]),
    (["--set", "data.onehot_max=-1"], ["data.onehot_max", "expected"]),
    (["--set", "data.min_frequency=0"], ["data.min_frequency", "expected"]),
    (["--set", "data.hash_buckets.city=0"], ["data.hash_buckets.city", "expected", "got 0"]),
    (["--set", f"data.hash_buckets.city={2**24}"], ["data.hash_buckets.city", "16777215"]),
    (["--set", "data.hash_buckets.a=8"], ["data.hash_buckets.a", "'a'", "not categorical"]),
    (["--set", "data.hash_buckets.nope=8"], ["data.hash_buckets.nope", "not a feature"]),
    (["--set", "data.embedding_dim.nope=4"], ["data.embedding_dim.nope", "not a feature"]),
    (["--set", "data.embedding_dim.b=4"], ["data.embedding_dim.b", "not categorical"]),
    (["--set", "data.embedding_dim.city=0"], ["data.embedding_dim.city", "expected", "got 0"]),
    (["--set", "data.val_size=0.9"], ["data.val_size"]),
    (["--task", "grade:multiclass:grade"], ["data.tasks", "unique"]),
]


@pytest.mark.parametrize("extra, culprits", BAD_FLAGS, ids=[" ".join(f[0]) for f in BAD_FLAGS])
def test_odd_flags_are_refused(tmp_path, extra, culprits):
    _frame().to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "run"
    _assert_clean_error(_train(tmp_path / "d.csv", out, *extra), "train", *culprits)
    assert not out.exists()


def test_stratify_on_multilabel_is_refused(tmp_path):
    _frame().assign(t=1, u=0).to_csv(tmp_path / "d.csv", index=False)
    tasks = ["--task", "tags:multilabel:t+u", "--task", "score:regression:score"]
    result = _train(
        tmp_path / "d.csv",
        tmp_path / "run",
        "--split",
        "stratified",
        "--stratify",
        "tags",
        tasks=tasks,
    )
    _assert_clean_error(result, "train", "data.stratify", "'tags'", "multilabel")


def test_high_cardinality_column_becomes_an_embedding_code_column(tmp_path):
    users = [f"u{i % 50}" for i in range(200)]  # 50 values, ties broken by label
    frame = _frame(n=200).assign(user=users)
    frame.to_csv(tmp_path / "d.csv", index=False)
    code, _, err = _train(tmp_path / "d.csv", tmp_path / "run")
    assert code == 0, err
    pre = _meta(tmp_path / "run")["preprocessor"]
    assert pre["encoders"] == {"city": "onehot", "user": "embedding"}
    assert len(pre["categories"]["user"]) == 50 and pre["notes"] == []

    code, _, err = _train(tmp_path / "d.csv", tmp_path / "kept", "--set", "data.max_categories=20")
    assert code == 0, err
    pre = _meta(tmp_path / "kept")["preprocessor"]
    train, _, _ = split_rows(200, "random", 0.15, 0.15, seed=0)  # the run's split
    counts = pd.Series(users)[train].value_counts()
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    assert pre["categories"]["user"] == sorted(label for label, _ in ranked[:20])
    share = sum(n for _, n in ranked[:20]) / counts.sum()
    assert pre["notes"] == [
        f"user: 50 distinct training values, kept the 20 most frequent ({share:.0%} of rows); "
        "the rest share one embedding row"
    ]


def test_embedded_and_hashed_columns_train_and_predict_with_coverage(tmp_path):
    frame = _frame(n=200).assign(
        user=[f"u{i % 50}" for i in range(200)], item=[f"i{i % 7}" for i in range(200)]
    )
    frame.to_csv(tmp_path / "d.csv", index=False)
    run = tmp_path / "run"
    code, _, err = _train(tmp_path / "d.csv", run, "--set", "data.hash_buckets.item=16")
    assert code == 0, err
    pre = _meta(run)["preprocessor"]
    assert pre["encoders"] == {"city": "onehot", "user": "embedding", "item": "hash"}
    new = frame.drop(columns=["grade", "passed", "score"]).head(6)
    new = new.assign(user=["u1", "u2", "nobody", None, "u3", "stranger"], item="new-item")
    new.to_csv(tmp_path / "new.csv", index=False)
    code, out, err = _cli(
        "predict", run, "--input", tmp_path / "new.csv", "--output", tmp_path / "p.csv"
    )
    assert code == 0, err
    assert "rows with a category unseen in training: 2" in out  # hashed items are never unseen
    assert len(pd.read_csv(tmp_path / "p.csv")) == 6


# --------------------------------------------------------- odd tables that train correctly
def _meta(out: Path) -> dict:
    return json.loads((out / "tasks.json").read_text())


def _classes(out: Path, task: str) -> list[str]:
    return next(t for t in _meta(out)["tasks"] if t["name"] == task)["class_names"]


def _labelled(printed: str, task: str) -> int:
    """Labelled rows over the three splits, from the label report of ``train``."""
    line = next(x for x in printed.splitlines() if x.strip().startswith(f"{task} ("))
    counts = line.split("labelled ")[1].split(";")[0].split(", ")
    return sum(int(c.split()[1].split("/")[0]) for c in counts)


def test_pandas_na_strings_are_classes_unless_listed(tmp_path):
    frame = _set(_frame(), "passed", [1, 4, 7], "NA")
    frame = _set(frame, "grade", [2, 5], "None")
    frame.to_csv(tmp_path / "d.csv", index=False)
    binary = ["--task", "passed:binary:passed"]
    result = _train(tmp_path / "d.csv", tmp_path / "r1", tasks=binary)
    _assert_clean_error(result, "train", "task 'passed'", "at most 2 classes", "found 3")
    code, out, err = _train(tmp_path / "d.csv", tmp_path / "r2", "--na-values", "NA")
    assert code == 0, err
    assert _classes(tmp_path / "r2", "grade") == ["A", "B", "C", "None"]
    assert _classes(tmp_path / "r2", "passed") == ["no", "yes"]
    assert _labelled(out, "passed") == 37 and _labelled(out, "grade") == 40


def test_na_values_make_numeric_tokens_missing(tmp_path):
    frame = _set(_set(_frame(), "a", [3, 9], "?"), "score", [0], "n/a")
    frame.to_csv(tmp_path / "d.csv", index=False)
    code, _, err = _train(tmp_path / "d.csv", tmp_path / "r", "--na-values", "?,n/a")
    assert code == 0, err
    pre = _meta(tmp_path / "r")["preprocessor"]
    assert pre["numeric"] == ["id", "a", "b"] and pre["indicators"] == ["a"]
    config = (tmp_path / "r" / "config.yaml").read_text()
    assert "na_values:\n  - '?'\n  - n/a" in config


def test_none_is_an_ordinary_category(tmp_path):
    _set(_frame(), "city", [0, 3, 6, 9], "None").to_csv(tmp_path / "d.csv", index=False)
    code, _, err = _train(tmp_path / "d.csv", tmp_path / "r")
    assert code == 0, err
    assert "None" in _meta(tmp_path / "r")["preprocessor"]["categories"]["city"]


def test_integer_like_codes_are_one_category(tmp_path):
    frame = _frame().assign(zone=np.arange(40) % 3 + 1)
    frame = _set(frame, "zone", [4], None)  # a missing cell: pandas would read floats
    frame.to_csv(tmp_path / "d.csv", index=False)
    code, _, err = _train(tmp_path / "d.csv", tmp_path / "r", "--categorical", "zone")
    assert code == 0, err
    assert _meta(tmp_path / "r")["preprocessor"]["categories"]["zone"] == ["1", "2", "3"]


def test_category_codes_read_as_float_or_int_predict_the_same(tmp_path):
    frame = _frame().assign(zone=(np.arange(40) % 3 + 1).astype(float))
    frame = _set(frame, "zone", [4], None)
    frame.to_csv(tmp_path / "d.csv", index=False)
    run = tmp_path / "r"
    assert _train(tmp_path / "d.csv", run, "--categorical", "zone")[0] == 0
    rows = _frame().drop(columns=["grade", "passed", "score"]).head(12)
    rows.assign(zone=np.arange(12) % 3 + 1).to_csv(tmp_path / "int.csv", index=False)
    rows.assign(zone=[f"{v}.0" for v in np.arange(12) % 3 + 1]).to_csv(
        tmp_path / "float.csv", index=False
    )
    for name in ("int", "float"):
        code, out, err = _cli(
            "predict",
            run,
            "--input",
            tmp_path / f"{name}.csv",
            "--output",
            tmp_path / f"p{name}.csv",
        )
        assert code == 0, err
        assert "rows with a category unseen in training: 0" in out
    a, b = pd.read_csv(tmp_path / "pint.csv"), pd.read_csv(tmp_path / "pfloat.csv")
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize(
    "text, check",
    [
        ('a,b,y\n1,"x, y",1\n2,"multi\nline",2\n3,z,3\n4,z,4\n5,x,5\n6,y,6\n7,z,7\n', "b"),
        ("a,b,y\n 1 , x ,1\n2,y,2\n\n3,x,3\n4,y,4\n5,x,5\n6,y,6\n7,x,7\n", "b"),
        ("a,b,y\n1,A1,1\n2,B2,2\n3,3,3\n4,C4,4\n5,D5,5\n6,6x,6\n7,E7,7\n", "b"),
    ],
    ids=["quoted comma and newline", "spaces and a blank line", "mostly words is categorical"],
)
def test_odd_but_valid_csv_trains(tmp_path, text, check):
    (tmp_path / "d.csv").write_text(text)
    code, _, err = _train(tmp_path / "d.csv", tmp_path / "r", tasks=["--task", "y:regression:y"])
    assert code == 0, err
    pre = _meta(tmp_path / "r")["preprocessor"]
    assert pre["numeric"] == ["a"] and pre["categorical"] == [check]


def test_parquet_bool_and_csv_text_bool_are_the_same_categories(tmp_path):
    frame = _frame().assign(flag=np.arange(40) % 2 == 0)
    frame.to_parquet(tmp_path / "d.parquet")
    frame.to_csv(tmp_path / "d.csv", index=False)
    for name in ("d.parquet", "d.csv"):
        code, _, err = _train(tmp_path / name, tmp_path / name.replace(".", "_"))
        assert code == 0, err
    a = _meta(tmp_path / "d_parquet")["preprocessor"]
    b = _meta(tmp_path / "d_csv")["preprocessor"]
    assert a == b and a["categories"]["flag"] == ["False", "True"]


# ------------------------------------------------------------------- predict and evaluate
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("trained")
    _frame(n=60).to_csv(tmp / "d.csv", index=False)
    code, _, err = _cli(
        "train", "--data", tmp / "d.csv", *TASKS, *QUICK, "--id-column", "id", "--out", tmp / "run"
    )
    assert code == 0, err
    return tmp / "run"


def _new_rows(n: int = 8) -> pd.DataFrame:
    return _frame(n=n, seed=3).drop(columns=["grade", "passed", "score"])


BAD_PREDICT_INPUTS = [
    ("inf", lambda f: _set(f, "a", 2, "inf"), ["feature column 'a'", "line 4", "value inf"]),
    ("overflow", lambda f: _set(f, "b", 5, "1e39"), ["feature column 'b'", "line 7", "float32"]),
    (
        "NA token",
        lambda f: _set(f, "a", 0, "NA"),
        ["feature column 'a'", "line 2", "--na-values NA"],
    ),
    ("word", lambda f: _set(f, "b", 1, "abc"), ["feature column 'b'", "line 3", "'abc'"]),
    ("missing column", lambda f: f.drop(columns=["city"]), ["lacks feature column(s) city"]),
]


@pytest.mark.parametrize(
    "mutate, culprits", [c[1:] for c in BAD_PREDICT_INPUTS], ids=[c[0] for c in BAD_PREDICT_INPUTS]
)
def test_predict_refuses_bad_rows(trained, tmp_path, mutate, culprits):
    mutate(_new_rows()).to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "p.csv"
    result = _cli("predict", trained, "--input", tmp_path / "new.csv", "--output", out)
    _assert_clean_error(result, "predict", *culprits)
    assert not out.exists()


@pytest.mark.parametrize(
    "text, culprits",
    [
        ("id,a,a,city\n1,2,3,x\n", ["duplicate column 'a'"]),
        ("id,a,b,city\n1,2,3,x,9\n", ["line 2: 5 fields"]),
        ("id,a,,city\n1,2,3,x\n", ["column 3 of the header has no name"]),
        ("id,a,b,city\n", ["no data rows"]),
    ],
    ids=["duplicate", "extra field", "empty name", "header only"],
)
def test_predict_refuses_bad_csv(trained, tmp_path, text, culprits):
    (tmp_path / "new.csv").write_text(text)
    out = tmp_path / "p.csv"
    result = _cli("predict", trained, "--input", tmp_path / "new.csv", "--output", out)
    _assert_clean_error(result, "predict", *culprits)
    assert not out.exists()


def test_predict_refuses_odd_outputs(trained, tmp_path):
    _new_rows().to_csv(tmp_path / "new.csv", index=False)
    before = (tmp_path / "new.csv").read_bytes()
    folder = _cli("predict", trained, "--input", tmp_path / "new.csv", "--output", tmp_path)
    _assert_clean_error(folder, "predict", "--output", "is a folder")
    same = _cli(
        "predict", trained, "--input", tmp_path / "new.csv", "--output", tmp_path / "new.csv"
    )
    _assert_clean_error(same, "predict", "--output", "is the input file")
    assert (tmp_path / "new.csv").read_bytes() == before


def test_predict_reads_parquet_like_csv_and_counts_odd_rows(trained, tmp_path):
    rows = _new_rows()
    rows = _set(_set(rows, "city", [1, 2], "w"), "a", [3], None)
    rows = _set(_set(rows, "b", [3], None), "city", [3], None)  # row 3: every feature missing
    rows.to_csv(tmp_path / "new.csv", index=False)
    rows.to_parquet(tmp_path / "new.parquet")
    printed = {}
    for name in ("new.csv", "new.parquet"):
        code, out, err = _cli(
            "predict",
            trained,
            "--input",
            tmp_path / name,
            "--output",
            tmp_path / f"{name}.out",
            "--id-column",
            "id",
        )
        assert code == 0, err
        printed[name] = out
    assert (
        "rows with every feature missing: 1; rows with a category unseen in training: 2"
        in (printed["new.parquet"])
    )
    a = pd.read_csv(tmp_path / "new.csv.out")
    b = pd.read_csv(tmp_path / "new.parquet.out")
    pd.testing.assert_frame_equal(a, b)
    assert a["id"].tolist() == rows["id"].tolist()
    assert a["grade_probability"].notna().all() and a["passed_probability"].notna().all()


def test_predict_never_labels_nan_probabilities(trained, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.yaml", "tasks.json"):
        (broken / name).write_bytes((trained / name).read_bytes())
    state = torch.load(trained / "model.pt", weights_only=True)
    head = next(k for k in state if "grade" in k and k.endswith("weight"))
    state[head] = torch.full_like(state[head], float("nan"))
    torch.save(state, broken / "model.pt")
    _new_rows().to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "p.csv"
    result = _cli("predict", broken, "--input", tmp_path / "new.csv", "--output", out)
    _assert_clean_error(result, "predict", "task 'grade'", "non-finite outputs for 8 row(s)")
    assert not out.exists()


def test_evaluate_reproduces_the_test_metrics_of_training(trained):
    code, out, err = _cli("evaluate", trained)
    assert code == 0, err
    summary = json.loads((trained / "summary.json").read_text())
    r2 = summary["test"]["score"]["r2"]
    assert "score r2" in out and f"{r2:.4f}" in out


def _copy_run_with_data(trained: Path, tmp: Path, frame: pd.DataFrame) -> Path:
    """A copy of the trained run whose config points at a new data file ``tmp/d.csv``."""
    run = tmp / "run"
    run.mkdir()
    frame.to_csv(tmp / "d.csv", index=False)
    config = (trained / "config.yaml").read_text()
    old = next(line for line in config.splitlines() if line.strip().startswith("path:"))
    config = config.replace(old, old.split("path:")[0] + f"path: {tmp / 'd.csv'}")
    (run / "config.yaml").write_text(config)
    for name in ("tasks.json", "model.pt", "summary.json"):
        (run / name).write_bytes((trained / name).read_bytes())
    return run


def test_evaluate_refuses_a_changed_data_file(trained, tmp_path):
    run = _copy_run_with_data(trained, tmp_path, _frame(n=60, seed=5))
    _assert_clean_error(
        _cli("evaluate", run), "evaluate", "changed since the run was trained", "--data"
    )
    (tmp_path / "d.csv").unlink()
    _assert_clean_error(_cli("evaluate", run), "evaluate", "no longer exists")


def test_evaluate_data_applies_the_stored_preprocessing(trained, tmp_path):
    frame = _frame(n=60)
    frame.to_csv(tmp_path / "same.csv", index=False)
    code, out, err = _cli("evaluate", trained, "--data", tmp_path / "same.csv")
    assert code == 0, err
    assert "every row of" in out
    # every row, with the stored preprocessing: the same as predicting and scoring by hand
    code, _, err = _cli(
        "predict", trained, "--input", tmp_path / "same.csv", "--output", tmp_path / "p.csv"
    )
    assert code == 0, err
    pred = pd.read_csv(tmp_path / "p.csv")
    accuracy = float((pred["grade"] == frame["grade"]).mean())
    row = next(line for line in out.splitlines() if line.startswith("grade accuracy"))
    assert float(row.split()[-1]) == pytest.approx(accuracy, abs=1e-4)


@pytest.mark.parametrize(
    "mutate, extra, culprits",
    [
        (
            lambda f: _set(f, "grade", 7, "D"),
            [],
            ["task 'grade'", "line 9", "class 'D'", "not seen"],
        ),
        (lambda f: _set(f, "passed", 2, "NA"), [], ["task 'passed'", "line 4", "class 'NA'"]),
        (lambda f: f.drop(columns=["score"]), [], ["task 'score'", "column 'score' is not in"]),
        (lambda f: _set(f, "a", 3, "-inf"), [], ["feature column 'a'", "line 5"]),
        (lambda f: _set(f, "score", 3, "NaN"), [], ["task 'score'", "line 5", "'NaN'"]),
        (lambda f: f, ["--split", "val"], ["--split", "--data"]),
    ],
    ids=["new class", "NA class", "no target column", "inf feature", "NaN target", "split"],
)
def test_evaluate_data_refuses_bad_files(trained, tmp_path, mutate, extra, culprits):
    mutate(_frame(n=20, seed=7)).to_csv(tmp_path / "new.csv", index=False)
    result = _cli("evaluate", trained, "--data", tmp_path / "new.csv", *extra)
    _assert_clean_error(result, "evaluate", *culprits)


def test_evaluate_data_reads_parquet_and_na_values_of_the_run(tmp_path):
    frame = _set(_frame(n=60), "a", [4], "NA")
    frame.to_csv(tmp_path / "d.csv", index=False)
    run = tmp_path / "run"
    code, _, err = _train(tmp_path / "d.csv", run, "--na-values", "NA")
    assert code == 0, err
    new = _frame(n=20, seed=2).astype({"b": str})
    new = _set(new, "b", [1], "NA")  # a text column in Parquet, NA per the run's na_values
    new.to_parquet(tmp_path / "new.parquet")
    code, out, err = _cli("evaluate", run, "--data", tmp_path / "new.parquet")
    assert code == 0, err
    assert "score r2" in out


# ---------------------------------------------------------------- more odd inputs (growing)
MORE_BAD_FLAGS = [
    (["--features", ","], ["data.features", "no feature columns"]),
    (["--stratify", "grade"], ["data.stratify", "only used with data.split: stratified"]),
    (["--split-column", "city"], ["data.split_column", "only used with data.split: column"]),
    (
        ["--split", "column", "--split-column", "part", "--features", "a,part"],
        ["data.features", "'part'", "split_column"],
    ),
    (["--categorical", "nope"], ["data.categorical", "'nope' is not in"]),
]


@pytest.mark.parametrize(
    "extra, culprits", MORE_BAD_FLAGS, ids=[" ".join(f[0]) for f in MORE_BAD_FLAGS]
)
def test_more_odd_flags_are_refused(tmp_path, extra, culprits):
    _frame().assign(part="train").to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "run"
    _assert_clean_error(_train(tmp_path / "d.csv", out, *extra), "train", *culprits)
    assert not out.exists()


def test_semicolon_separated_file_names_the_missing_column(tmp_path):
    _frame().to_csv(tmp_path / "d.csv", index=False, sep=";")
    result = _train(tmp_path / "d.csv", tmp_path / "run")
    _assert_clean_error(result, "train", "task 'grade'", "column 'grade' is not in")


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: ("\ufeff" + text).encode(),
        lambda text: text.replace("\n", "\r\n").encode(),
    ],
    ids=["byte order mark", "CRLF line ends"],
)
def test_bom_and_crlf_files_read_like_plain_ones(tmp_path, encode):
    text = _frame().to_csv(index=False)
    (tmp_path / "plain.csv").write_text(text)
    (tmp_path / "odd.csv").write_bytes(encode(text))
    for name in ("plain", "odd"):
        code, _, err = _train(tmp_path / f"{name}.csv", tmp_path / name, "--id-column", "id")
        assert code == 0, err
    plain, odd = _meta(tmp_path / "plain"), _meta(tmp_path / "odd")
    for key in ("preprocessor", "tasks", "target_scaling", "input_shape"):
        assert plain[key] == odd[key], key


def test_parquet_with_a_named_index_keeps_the_column(tmp_path):
    _frame().set_index("id").to_parquet(tmp_path / "d.parquet")
    code, _, err = _train(tmp_path / "d.parquet", tmp_path / "r", "--id-column", "id")
    assert code == 0, err
    assert _meta(tmp_path / "r")["preprocessor"]["numeric"] == ["a", "b"]


def test_parquet_and_csv_give_the_same_preprocessing_and_classes(tmp_path):
    frame = _set(_frame(), "a", [3], None)
    frame.to_parquet(tmp_path / "d.parquet")
    frame.to_csv(tmp_path / "d.csv", index=False)
    for name in ("d.parquet", "d.csv"):
        code, _, err = _train(tmp_path / name, tmp_path / name.replace(".", "_"))
        assert code == 0, err
    a, b = _meta(tmp_path / "d_parquet"), _meta(tmp_path / "d_csv")
    assert a["preprocessor"] == b["preprocessor"] and a["tasks"] == b["tasks"]


def test_predict_refuses_a_nested_parquet_input(trained, tmp_path):
    table = pa.Table.from_pandas(_new_rows(), preserve_index=False)
    pq.write_table(table.append_column("tags", pa.array([[1]] * 8)), tmp_path / "new.parquet")
    out = tmp_path / "p.csv"
    result = _cli("predict", trained, "--input", tmp_path / "new.parquet", "--output", out)
    _assert_clean_error(result, "predict", "column 'tags' is nested")
    assert not out.exists()


def test_predict_with_the_runs_na_values_counts_all_missing_rows(tmp_path):
    _set(_frame(n=60), "a", [4], "?").to_csv(tmp_path / "d.csv", index=False)
    run = tmp_path / "run"
    code, _, err = _train(tmp_path / "d.csv", run, "--id-column", "id", "--na-values", "?")
    assert code == 0, err
    rows = _set(_set(_set(_new_rows(), "a", [0, 1], "?"), "b", [0], "?"), "city", [0], None)
    rows.to_csv(tmp_path / "new.csv", index=False)
    code, out, err = _cli(
        "predict", run, "--input", tmp_path / "new.csv", "--output", tmp_path / "p.csv"
    )
    assert code == 0, err
    assert "rows with every feature missing: 1;" in out
    assert len(pd.read_csv(tmp_path / "p.csv")) == 8


def test_evaluate_data_on_a_run_of_a_builtin_dataset_is_refused(tmp_path):
    run = tmp_path / "run"
    code, _, err = _cli("train", "--dataset", "penguins", *QUICK, "--out", run)
    assert code == 0, err
    _frame().to_csv(tmp_path / "new.csv", index=False)
    result = _cli("evaluate", run, "--data", tmp_path / "new.csv")
    _assert_clean_error(result, "evaluate", "--data", "not trained on a table")


@pytest.mark.parametrize(
    "write, culprits",
    [
        (
            lambda p: pq.write_table(_arrow(tags=pa.array([[1]] * 40)), p / "new.parquet"),
            ["column 'tags' is nested"],
        ),
        (
            lambda p: _set(_frame(), "score", 5, np.inf).to_parquet(p / "new.parquet"),
            ["task 'score'", "row 6 of", "non-finite value inf"],
        ),
        (
            lambda p: _set(_frame(), "passed", 5, "maybe").to_parquet(p / "new.parquet"),
            ["task 'passed'", "row 6 of", "class 'maybe'"],
        ),
    ],
    ids=["nested", "inf target", "new binary class"],
)
def test_evaluate_data_refuses_bad_parquet(trained, tmp_path, write, culprits):
    write(tmp_path)
    result = _cli("evaluate", trained, "--data", tmp_path / "new.parquet")
    _assert_clean_error(result, "evaluate", *culprits)


def test_evaluate_split_val_matches_training(trained):
    code, out, err = _cli("evaluate", trained, "--split", "val")
    assert code == 0, err
    assert "val metrics" in out
