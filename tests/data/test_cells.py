"""Properties of how cells are read (mtlkit.data.cells): missing, numbers, category labels."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtlkit.data.cells import (
    FLOAT32_MAX,
    DataError,
    labels,
    legacy_label,
    location,
    numbers,
    numeric_share,
)


@settings(max_examples=60, deadline=None)
@given(k=st.integers(-(2**53) + 1, 2**53 - 1))
def test_an_integer_code_has_one_label_however_it_is_stored(k):
    forms = [pd.Series([k]), pd.Series([float(k)]), pd.Series([f"{k}.0"]), pd.Series([f" {k} "])]
    assert {labels(s).iloc[0] for s in forms} == {str(k)}


@settings(max_examples=60, deadline=None)
@given(x=st.floats(-FLOAT32_MAX, FLOAT32_MAX, allow_nan=False))
def test_a_number_and_its_text_have_the_same_label(x):
    assert labels(pd.Series([x])).iloc[0] == labels(pd.Series([repr(x)])).iloc[0]


@settings(max_examples=60, deadline=None)
@given(
    cells=st.lists(
        st.one_of(st.none(), st.floats(allow_nan=False), st.sampled_from(["1", "x", "NA"])),
        min_size=1,
        max_size=20,
    )
)
def test_numbers_are_finite_float32_or_an_error_naming_the_row(cells):
    series = pd.Series(cells, dtype=object)
    try:
        values = numbers(series, "feature column 'c'")
    except DataError as err:
        assert str(err).startswith("feature column 'c', index ")
        row = int(str(err).split("index ")[1].split(":")[0])
        cell = cells[row]
        assert isinstance(cell, str) and cell != "1" or abs(float(cell)) > FLOAT32_MAX
        return
    present = np.array([c is not None for c in cells])
    assert np.isnan(values[~present]).all()
    assert (np.abs(values[present]) <= FLOAT32_MAX).all()


def test_pandas_na_strings_are_values_and_named_in_errors():
    series = pd.Series(["1", "NA", None], dtype=object)
    assert labels(series).tolist() == ["1", "NA", None]
    with pytest.raises(DataError, match=r"index 1: non-numeric value 'NA' \(pass --na-values NA"):
        numbers(series, "feature column 'c'")
    assert numeric_share(series) == 0.5


def test_locations_name_csv_lines_and_parquet_rows():
    frame = pd.DataFrame({"a": [1, 2]})
    assert location(frame, 1) == "index 1"
    frame.attrs["source"] = "d.csv"
    assert location(frame, 1) == "line 3 of 'd.csv'"  # the header is line 1
    frame.attrs["source"] = "d.parquet"
    assert location(frame, 1) == "row 2 of 'd.parquet'"


@settings(max_examples=60, deadline=None)
@given(x=st.floats(-FLOAT32_MAX, FLOAT32_MAX, allow_nan=False).filter(lambda v: v != int(v)))
def test_a_fractional_number_is_labelled_as_python_writes_it(x):
    # numpy 2's repr gave 'np.float64(0.5)', a class name users saw in predictions
    assert labels(pd.Series([x])).iloc[0] == repr(float(x))
    assert labels(pd.Series([x, "a"], dtype=object)).iloc[0] == repr(float(x))


def test_labels_stored_by_older_runs_read_as_today():
    from mtlkit.data import TabularPreprocessor
    from mtlkit.tasks import Task

    old = TabularPreprocessor([], ["rate"]).fit(pd.DataFrame({"rate": [0.5, 1.5, 0.5]})).to_dict()
    old["categories"]["rate"] = ["np.float64(0.5)", "np.float64(1.5)"]
    pre = TabularPreprocessor.from_dict(old)
    assert pre.categories["rate"] == ["0.5", "1.5"]
    assert pre.transform(pd.DataFrame({"rate": [1.5]})).tolist() == [[0.0, 1.0]]
    task = Task("g", "multiclass", 2, class_names=["np.float64(0.5)", "b"]).to_dict()
    assert Task.from_dict(task).class_names == ["0.5", "b"]
    # whole numbers from 2**53 on were written as floats ('9007199254740992.0'), now as digits
    stored = ["9007199254740992.0", "np.float64(1.152921504606847e+18)", "1e+20", "2.0", "x"]
    today = ["9007199254740992", "1152921504606846976", "1e+20", "2.0", "x"]
    assert [legacy_label(s) for s in stored] == today


def test_labels_of_numbers_written_in_several_ways():
    cells = ["1", "1.0", "1e0", " 0.5", "-2.50", "1e20", "x", "7.0e-1"]
    assert labels(pd.Series(cells, dtype=object)).tolist() == (
        ["1", "1", "1", "0.5", "-2.5", "1e+20", "x", "0.7"]
    )


@settings(max_examples=60, deadline=None)
@given(k=st.integers(2**53, 2**63 - 1).map(float).filter(lambda v: v < 2**63))
def test_a_whole_number_beyond_2_53_is_its_digits_as_an_int64_float_or_text(k):
    # above 2**53 every float is whole; one that an int64 holds is the same id stored either way
    forms = [pd.Series([int(k)]), pd.Series([k]), pd.Series([repr(k)]), pd.Series([str(int(k))])]
    assert {labels(s).iloc[0] for s in forms} == {str(int(k))}


@settings(max_examples=60, deadline=None)
@given(k=st.integers(2**53, 2**63 - 2))
def test_an_id_written_as_digits_beyond_2_53_keeps_every_digit(k):
    """Digit-only text went through float64, so distinct text ids beyond 2**53 (e.g. 19-digit
    ids stored as strings) merged into one label, one category and one hash bucket."""
    cells = pd.Series([str(k), f" +{k} ", str(k + 1), f"0{k}"], dtype=object)
    assert labels(cells).tolist() == [str(k), str(k), str(k + 1), str(k)]
    assert labels(pd.Series([k])).iloc[0] == str(k)  # the same id stored as an int64


def test_only_ascii_digit_text_is_read_as_an_exact_integer():
    cells = pd.Series(["1_000", "١٢", "12", "-0", "9" * 25], dtype=object)
    assert labels(cells).tolist() == ["1_000", "١٢", "12", "0", "1e+25"]
