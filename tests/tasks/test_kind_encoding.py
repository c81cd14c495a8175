"""Each task kind encodes a target column (raw cells → targets, classes, missing marker) and
decodes it back; table loading only asks the kind."""

import numpy as np
import pandas as pd
import pytest
import torch

from mtlkit.cells import DataError
from mtlkit.tasks import KINDS, Task, get_kind


def _column(values, name="y"):
    return pd.Series(values, name=name, dtype=object)


@pytest.mark.parametrize("name", ["binary", "multiclass"])
def test_class_kinds_encode_labels_to_ids_in_natural_order_and_decode_back(name):
    kind = get_kind(name)
    cells = ["10", "2", None, "2"] if name == "binary" else ["10", "2", None, "b", "2"]
    encoded = kind.encode("t", [_column(cells)])
    expected = ["2", "10"] if name == "binary" else ["2", "10", "b"]
    assert encoded.class_names == expected
    missing = kind.is_missing(encoded.values)
    assert missing.tolist() == [c is None for c in cells]
    assert [encoded.class_names[v] for v in encoded.values[~missing]] == [
        c for c in cells if c is not None
    ]
    assert kind.decode(encoded.values, encoded.class_names).tolist() == cells
    assert encoded.num_outputs == (1 if name == "binary" else 3)


@pytest.mark.parametrize("name", ["binary", "multiclass"])
@pytest.mark.parametrize("names", [["no", "yes", "maybe"], None])
def test_prediction_labels_are_the_decoded_predicted_ids(name, names):
    names = names and names[: 2 if name == "binary" else 3]
    task = Task("t", name, num_outputs=3, class_names=names)
    output = torch.randn(40, task.num_outputs, generator=torch.Generator().manual_seed(0))
    ids = task.predict(output).numpy()
    expected = [names[i] for i in ids] if names else ids.tolist()
    column = task.spec.columns(task, output)["t"]
    assert column == task.spec.decode(ids, names).tolist() == expected
    assert all(type(label) is (str if names else int) for label in column)

    class Tagged(type(task.spec)):  # a kind that labels its classes its own way
        def decode(self, values, class_names):
            return np.array([f"<{label}>" for label in super().decode(values, class_names)])

    assert Tagged().columns(task, output)["t"] == [f"<{label}>" for label in expected]


def test_a_trained_runs_classes_fix_the_ids_and_an_unseen_class_names_the_row():
    kind = get_kind("multiclass")
    encoded = kind.encode("t", [_column(["b", "a"])], classes=["b", "c", "a"])
    assert encoded.values.tolist() == [0, 2]
    with pytest.raises(DataError, match=r"task 't': column 'y', index 1: class 'z' was not seen"):
        kind.encode("t", [_column(["a", "z"])], classes=["a", "b"])


def test_binary_refuses_a_third_class_naming_task_and_column():
    with pytest.raises(DataError, match=r"task 't': a binary task needs at most 2 classes in "):
        get_kind("binary").encode("t", [_column(["a", "b", "c"], name="col")])


def test_regression_encodes_numbers_with_nan_missing_one_output_per_column():
    kind = get_kind("regression")
    one = kind.encode("r", [pd.Series([1.5, None, "3"], name="a", dtype=object)])
    np.testing.assert_array_equal(one.values, [1.5, np.nan, 3.0])
    assert (one.num_outputs, one.class_names) == (1, None)
    two = kind.encode("r", [pd.Series([1.0, 2.0], name="a"), pd.Series([3.0, None], name="b")])
    np.testing.assert_array_equal(two.values, [[1.0, 3.0], [2.0, np.nan]])
    np.testing.assert_array_equal(kind.decode(two.values), two.values)
    with pytest.raises(DataError, match=r"task 'r': column 'a', index 1: non-numeric value 'x'"):
        kind.encode("r", [pd.Series(["1", "x"], name="a")])


def test_multilabel_encodes_0_1_columns_named_by_label_and_refuses_other_values():
    kind = get_kind("multilabel")
    encoded = kind.encode("m", [pd.Series([1, 0, None], name="a"), pd.Series([0, 1, 1], name="b")])
    assert encoded.class_names == ["a", "b"] and encoded.num_outputs == 2
    assert kind.is_missing(encoded.values).tolist() == [
        [False, False],
        [False, False],
        [True, False],
    ]
    assert kind.decode(encoded.values).tolist() == [[1, 0], [0, 1], [None, 1]]
    with pytest.raises(DataError, match=r"task 'm': column 'a', index 0: must hold 0/1 labels"):
        kind.encode("m", [pd.Series([2, 0], name="a")])


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_marks_missing_cells_with_its_missing_label(name):
    kind = get_kind(name)
    cells = [pd.Series([1, None, 0], name="c")]
    encoded = kind.encode("t", cells)
    flags = kind.is_missing(np.asarray(encoded.values, dtype=float))
    assert flags.reshape(3, -1).any(axis=1).tolist() == [False, True, False]
