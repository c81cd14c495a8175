"""scan_table: one pass gives what load_table gives on the whole table, whatever the chunking."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from stream_testutil import OPTIONS, TASKS, mixed_frame, write_parts

from mtlkit.data.cells import DataError
from mtlkit.data.stream.split import hash_split
from mtlkit.data.stream.table import scan_table
from mtlkit.data.table import TableTask, load_table


def _stack(table, split):
    parts = [table.read_unit(i, split) for i in range(len(table.units))]
    inputs = torch.cat([x for x, _ in parts])
    targets = {t: torch.cat([y[t] for _, y in parts]) for t in table.task_names}
    rows = np.concatenate([table.read_unit_rows(i, split) for i in range(len(table.units))])
    return inputs, targets, rows


def _assert_same_preprocessor(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key in ("means", "stds", "medians"):
            assert a[key].keys() == b[key].keys()
            for column in a[key]:
                assert a[key][column] == pytest.approx(b[key][column], rel=1e-12, abs=1e-15)
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
@pytest.mark.parametrize("id_column", [None, "id"])
def test_stream_fit_equals_load_table_fit(tmp_path, suffix, id_column):
    frame = mixed_frame()
    path = tmp_path / f"t{suffix}"
    (frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path))
    options = {**OPTIONS, "id_column": id_column, "seed": 3}
    bundle = load_table(path, TASKS, split="hash", **options)
    table = scan_table(path, TASKS, split="hash", chunk_rows=333, **options)

    assert table.tasks == bundle.tasks
    assert table.input_shape == bundle.input_shape
    assert table.preprocessor.embedding_specs == bundle.preprocessor.embedding_specs
    assert table.preprocessor.embedding_specs  # the 60-value shop column is a code column
    _assert_same_preprocessor(table.preprocessor.to_dict(), bundle.preprocessor.to_dict())
    (mean, std), (mean_b, std_b) = table.target_scaling["price"], bundle.target_scaling["price"]
    assert (mean, std) == pytest.approx((mean_b, std_b), rel=1e-12)
    for split in ("train", "val", "test"):
        inputs, targets, rows = _stack(table, split)
        expected = getattr(bundle, split)
        torch.testing.assert_close(inputs, expected.inputs, rtol=1e-6, atol=1e-6)
        assert torch.equal(targets["grade"], expected.targets["grade"])
        torch.testing.assert_close(targets["price"], expected.targets["price"], equal_nan=True)
        assert len(rows) == table.num_rows(split) == len(expected)
    train_rows = _stack(table, "train")[2]
    keys = {"ids": frame["id"]} if id_column else {"rows": np.arange(len(frame))}
    np.testing.assert_array_equal(
        train_rows, np.flatnonzero(hash_split(0.15, 0.15, 3, **keys) == 0)
    )


def test_label_counts_are_the_training_class_counts(tmp_path):
    frame = mixed_frame()
    frame.to_parquet(tmp_path / "t.parquet")
    table = scan_table(tmp_path / "t.parquet", TASKS, chunk_rows=500, **OPTIONS)
    train = np.flatnonzero(hash_split(0.15, 0.15, 0, rows=np.arange(len(frame))) == 0)
    counts = frame["grade"].iloc[train].value_counts()
    assert table.label_counts["grade"].tolist() == [counts["a"], counts["b"], counts["c"]]
    assert table.unit_counts.shape == (len(table.units), 3)
    assert table.unit_counts.sum() == len(frame)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_result_does_not_depend_on_chunk_size_or_file_split(tmp_path, suffix):
    frame = mixed_frame(300)
    whole = write_parts(frame, tmp_path / "whole", [], suffix)[0]
    reference = scan_table(whole, TASKS, chunk_rows=10_000, **OPTIONS)
    ref_inputs, ref_targets, ref_rows = _stack(reference, "train")
    layouts = [(whole, 13), (whole, 77), (tmp_path / "parts", 40), (tmp_path / "parts", 1000)]
    write_parts(frame, tmp_path / "parts", [1, 150, 151, 299], suffix)
    for path, chunk_rows in layouts:
        table = scan_table(path, TASKS, chunk_rows=chunk_rows, **OPTIONS)
        assert all(u.rows <= chunk_rows for u in table.units)
        assert table.unit_counts.sum(axis=0).tolist() == reference.unit_counts.sum(0).tolist()
        inputs, targets, rows = _stack(table, "train")
        np.testing.assert_array_equal(rows, ref_rows)
        torch.testing.assert_close(inputs, ref_inputs, rtol=1e-6, atol=1e-6)
        assert torch.equal(targets["grade"], ref_targets["grade"])
        assert table.tasks == reference.tasks


def test_column_split_reads_the_split_column(tmp_path):
    frame = mixed_frame(300)
    frame["part"] = np.tile(["train", "val", "train", "test"], 75)
    frame.to_parquet(tmp_path / "t.parquet")
    table = scan_table(
        tmp_path / "t.parquet", TASKS, split="column", split_column="part", chunk_rows=64, **OPTIONS
    )
    assert table.unit_counts.sum(axis=0).tolist() == [150, 75, 75]
    rows = np.concatenate([table.read_unit_rows(i, "val") for i in range(len(table.units))])
    np.testing.assert_array_equal(rows, np.arange(1, 300, 4))


def test_a_stream_table_pickles_for_dataloader_workers(tmp_path):
    mixed_frame(300).to_parquet(tmp_path / "t.parquet")
    table = scan_table(tmp_path / "t.parquet", TASKS, chunk_rows=100, **OPTIONS)
    table.read_unit(0, "train")  # fills the row-group cache, which is not pickled
    copy = pickle.loads(pickle.dumps(table))
    assert copy.source._cache is None
    x, y = copy.read_unit(2, "train")
    assert torch.equal(x, table.read_unit(2, "train")[0])


def test_stream_refuses_a_stratified_split(tmp_path):
    mixed_frame(50).to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DataError, match="data.split: a stream splits by hash"):
        scan_table(tmp_path / "t.parquet", TASKS, split="stratified", **OPTIONS)


def test_a_word_in_a_numeric_column_after_the_first_chunk_names_file_and_line(tmp_path):
    frame = mixed_frame(300).astype({"x": object})
    frame.loc[250, "x"] = "oops"
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"feature column 'x', line 252 of '.*t.csv'.*'oops'"):
        scan_table(tmp_path / "t.csv", TASKS, chunk_rows=100, **OPTIONS)


def test_an_unknown_target_column_is_named(tmp_path):
    mixed_frame(50).to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DataError, match="task 'grade': column 'grad' is not in"):
        scan_table(tmp_path / "t.parquet", [TableTask("grade", "multiclass", ["grad"])])


def test_a_task_without_training_labels_is_an_error(tmp_path):
    frame = mixed_frame(200)
    frame["price"] = np.nan
    frame.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DataError, match="task 'price': no labelled rows"):
        scan_table(tmp_path / "t.parquet", TASKS, **OPTIONS)


def test_a_binary_task_with_three_labels_across_chunks_is_an_error(tmp_path):
    frame = pd.DataFrame({"x": np.arange(300.0), "y": ["0", "1"] * 149 + ["2", "2"]})
    frame.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DataError, match="task 'y': a binary task needs at most 2 classes"):
        scan_table(tmp_path / "t.parquet", [TableTask("y", "binary", ["y"])], chunk_rows=100)


def test_the_fit_pass_sees_one_record_batch_at_a_time(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from mtlkit.data.tabular import TabularPreprocessor

    write_parts(mixed_frame(1000), tmp_path / "d", [250, 500, 750], ".parquet")
    seen = []
    partial_fit = TabularPreprocessor.partial_fit

    def recording(self, frame):
        seen.append(len(frame))
        return partial_fit(self, frame)

    def refuse(*args, **kwargs):
        raise AssertionError("a whole file or row group was read")

    monkeypatch.setattr(TabularPreprocessor, "partial_fit", recording)
    for name in ("read", "read_row_group"):
        monkeypatch.setattr(pq.ParquetFile, name, refuse)
    monkeypatch.setattr(pq, "read_table", refuse)
    monkeypatch.setattr(pd, "read_parquet", refuse)
    table = scan_table(tmp_path / "d", TASKS, chunk_rows=64, **OPTIONS)
    assert max(seen) <= 64
    assert sum(seen) == table.num_rows("train")


def test_build_model_takes_a_stream_table_for_a_bundle(tmp_path):
    from mtlkit.config import Config
    from mtlkit.runs.build import build_model

    mixed_frame(300).to_parquet(tmp_path / "t.parquet")
    table = scan_table(tmp_path / "t.parquet", TASKS, chunk_rows=100, **OPTIONS)
    config = Config()
    config.model.arch = "mmoe"
    model = build_model(config, table)
    inputs, targets = table.read_unit(0, "train")
    outputs = model(inputs)
    assert outputs["grade"].shape == (len(inputs), 3)
    assert outputs["price"].shape[0] == len(inputs)


def test_binary_and_multilabel_tasks_match_load_table(tmp_path):
    rng = np.random.default_rng(1)
    n = 400
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "clicked": np.where(rng.random(n) < 0.1, None, rng.choice(["no", "yes"], n)),
            "is_a": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 2, n)),
            "is_b": rng.integers(0, 2, n),
        }
    )
    frame.to_csv(tmp_path / "t.csv", index=False)
    tasks = [
        TableTask("clicked", "binary", ["clicked"]),
        TableTask("tags", "multilabel", ["is_a", "is_b"]),
    ]
    bundle = load_table(tmp_path / "t.csv", tasks, split="hash")
    table = scan_table(tmp_path / "t.csv", tasks, chunk_rows=37)
    assert table.tasks == bundle.tasks
    assert table.tasks[0].class_names == ["no", "yes"]
    _, targets, _ = _stack(table, "train")
    for name in ("clicked", "tags"):
        assert torch.equal(targets[name], bundle.train.targets[name])
