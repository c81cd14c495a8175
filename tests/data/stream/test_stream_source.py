"""StreamSource: files of a path, checked columns, units read one at a time, errors naming files."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from stream_testutil import mixed_frame, write_parts

from mtlkit.data.cells import DataError
from mtlkit.data.stream.source import StreamSource, resolve_files
from mtlkit.data.table import read_table


def test_directory_and_glob_give_sorted_data_files(tmp_path):
    frame = mixed_frame(40)
    paths = write_parts(frame, tmp_path / "d", [10, 20], ".parquet")
    (tmp_path / "d" / "_SUCCESS").write_text("")
    (tmp_path / "d" / ".part-9.parquet").write_text("hidden")
    (tmp_path / "d" / "notes.txt").write_text("not data")
    assert resolve_files(tmp_path / "d") == paths
    assert resolve_files(str(tmp_path / "d" / "part-*.parquet")) == paths
    assert resolve_files(paths[1]) == [paths[1]]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_units_cover_every_row_once_in_file_order(tmp_path, suffix):
    frame = mixed_frame(100)
    write_parts(frame, tmp_path / "d", [30, 31], suffix)
    source = StreamSource(tmp_path / "d", chunk_rows=16)
    scanned = list(source.scan())
    assert all(unit.rows <= 16 for unit, _ in scanned)
    assert [u.first_row for u, _ in scanned] == list(np.cumsum([0] + [u.rows for u, _ in scanned]))[
        :-1
    ]
    whole = pd.concat([f for _, f in scanned], ignore_index=True)
    pd.testing.assert_frame_equal(whole, frame, check_dtype=False)
    for unit, chunk in scanned:  # random access gives the same rows, file and row numbers
        again = source.read(unit)
        pd.testing.assert_frame_equal(again, chunk)
        assert again.attrs["source"] == str(source.files[unit.file])
        assert again.index[0] == unit.file_row


def test_units_read_like_read_table(tmp_path):
    frame = pd.DataFrame({" a ": [1.0, None, 3.0], "b": ["x", "?", " "], "c": [1, 2, 3]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    source = StreamSource(tmp_path / "t.csv", na_values=["?"], chunk_rows=2)
    streamed = pd.concat([f for _, f in source.scan()])
    expected = read_table(tmp_path / "t.csv", na_values=["?"])
    assert list(streamed.columns) == ["a", "b", "c"]
    pd.testing.assert_frame_equal(streamed, expected, check_dtype=False)


def test_a_glob_matching_nothing_is_named(tmp_path):
    with pytest.raises(DataError, match=r"data.path '.*nothing-\*.parquet': the pattern matches"):
        StreamSource(str(tmp_path / "nothing-*.parquet"))


def test_a_directory_without_data_files_is_named(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="the directory holds no Parquet"):
        StreamSource(tmp_path)


def test_a_corrupt_file_in_a_directory_is_named(tmp_path):
    write_parts(mixed_frame(20), tmp_path / "d", [10], ".parquet")
    (tmp_path / "d" / "part-1.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    with pytest.raises(DataError, match=r"data file '.*part-1.parquet' cannot be read"):
        StreamSource(tmp_path / "d")


def test_mixed_formats_are_refused(tmp_path):
    write_parts(mixed_frame(20), tmp_path / "d", [], ".parquet")
    mixed_frame(5).to_csv(tmp_path / "d" / "extra.csv", index=False)
    with pytest.raises(DataError, match="mixes Parquet .* and other files .*extra.csv"):
        StreamSource(tmp_path / "d")


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_files_with_other_columns_are_named(tmp_path, suffix):
    frame = mixed_frame(20)
    write_parts(frame, tmp_path / "d", [10], suffix)
    other = frame.drop(columns=["z"]).assign(w=1.0)
    path = tmp_path / "d" / f"part-2{suffix}"
    other.to_csv(path, index=False) if suffix == ".csv" else other.to_parquet(path)
    with pytest.raises(
        DataError,
        match=r"'.*part-2.* its columns differ from .*part-0.*lacks \['z'\]; adds \['w'\]",
    ):
        StreamSource(tmp_path / "d")


def test_a_column_of_numbers_in_one_file_and_text_in_another_is_named(tmp_path):
    frame = mixed_frame(20)
    write_parts(frame, tmp_path / "d", [10], ".parquet")
    frame.astype({"x": str}).to_parquet(tmp_path / "d" / "part-2.parquet")
    with pytest.raises(
        DataError, match=r"part-2.parquet': column 'x' holds text values, .* number"
    ):
        StreamSource(tmp_path / "d")


def test_a_csv_row_with_a_missing_field_names_file_and_line(tmp_path):
    (tmp_path / "a.csv").write_text("x,y\n1,2\n3,4\n")
    (tmp_path / "b.csv").write_text("x,y\n1,2\n3\n")
    source = StreamSource(tmp_path, chunk_rows=1)
    with pytest.raises(DataError, match=r"data file '.*b.csv', line 3: 1 fields, the header has 2"):
        list(source.scan())


def test_a_duplicate_header_name_is_named(tmp_path):
    (tmp_path / "a.csv").write_text("x, x\n1,2\n")
    with pytest.raises(DataError, match=r"'.*a.csv': duplicate column 'x'"):
        StreamSource(tmp_path / "a.csv")


def test_scan_holds_one_record_batch(tmp_path, monkeypatch):
    """A directory of 5 files x 3 row groups is read 64 rows at a time: no read of a whole file
    or row group, and no frame of more than 64 rows."""
    frame = mixed_frame(1500)
    write_parts(frame, tmp_path / "d", [300, 600, 900, 1200], ".parquet")
    decoded = []
    original = pq.ParquetFile.iter_batches

    def counting(self, *args, **kwargs):
        for batch in original(self, *args, **kwargs):
            decoded.append(batch.num_rows)
            yield batch

    def refuse(*args, **kwargs):
        raise AssertionError("a whole file or row group was read")

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counting)
    monkeypatch.setattr(pq.ParquetFile, "read", refuse)
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", refuse)
    monkeypatch.setattr(pq, "read_table", refuse)
    monkeypatch.setattr(pd, "read_parquet", refuse)
    source = StreamSource(tmp_path / "d", chunk_rows=64)
    sizes = [len(chunk) for _, chunk in source.scan()]
    assert max(decoded) <= 64 and max(sizes) <= 64
    assert sum(decoded) == sum(sizes) == 1500


def test_a_csv_file_that_is_not_utf8_is_named(tmp_path):
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "b.csv").write_bytes(b"x,y\n1,2\n\xff\xfe,3\n")
    with pytest.raises(DataError, match=r"data file '.*b.csv' cannot be read: it is not UTF-8"):
        list(StreamSource(tmp_path).scan())


def test_a_file_without_rows_adds_no_unit(tmp_path):
    (tmp_path / "a.csv").write_text("x,y\n1,2\n3,4\n")
    (tmp_path / "b.csv").write_text("x,y\n")
    (tmp_path / "c.csv").write_text("x,y\n5,6\n")
    units = [unit for unit, _ in StreamSource(tmp_path).scan()]
    assert [(u.file, u.first_row, u.rows) for u in units] == [(0, 0, 2), (2, 2, 1)]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_files_with_columns_in_another_order_are_read_by_name(tmp_path, suffix):
    first = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    second = pd.DataFrame({"b": ["z", "w"], "a": [3, 4]})
    for name, frame in (("p1", first), ("p2", second)):
        path = tmp_path / f"{name}{suffix}"
        frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    source = StreamSource(tmp_path)
    scanned = [frame for _, frame in source.scan()]
    assert scanned[1]["a"].tolist() == [3, 4]
    assert scanned[1]["b"].tolist() == ["z", "w"]
    units = [unit for unit, _ in source.scan()]
    assert source.read(units[1])["a"].tolist() == [3, 4]
