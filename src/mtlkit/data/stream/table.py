"""A table larger than memory, fitted in one pass: :func:`scan_table` → :class:`StreamTable`.

One pass over the units of a :class:`~mtlkit.data.stream.source.StreamSource` (one record batch in
memory at a time) gives everything training needs before the first step:

- each row's split (``hash``: :mod:`mtlkit.data.stream.split`; ``column``: the split column) and
  the rows of each split in each unit (``unit_counts``, shape ``(n_units, 3)``), so that every
  rank knows every rank's row counts without reading;
- the preprocessor, fitted by ``partial_fit`` on the training rows of each unit, then ``finish``;
- each task as its kind encodes it (:meth:`~mtlkit.tasks.kinds.base.TaskKind.encode`): the classes
  of a class-label task are the labels seen in the whole column, sorted as the kind sorts them (as
  :func:`~mtlkit.data.table.load_table` does); the training-row count of each class
  (``label_counts``); and for a scaled kind (regression) the mean and standard deviation of the
  labelled training targets (Chan et al.'s merge, float64).

Feature columns are numeric or categorical by the rules of :func:`~mtlkit.data.table.load_table`,
judged on the first unit (``data.stream_chunk_rows`` rows); a later non-numeric cell in a numeric
column is an error naming its file and row (list the column in ``data.categorical``). With the
same file, split ``hash`` and seed, ``load_table`` and :func:`scan_table` give the same
preprocessor, tasks, target scaling and rows in each split, and :meth:`StreamTable.read_unit`
returns the rows ``load_table`` puts in that split, in file order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from mtlkit.cells import DataError, natural_key, numbers
from mtlkit.data.datasets import as_tensor_targets
from mtlkit.data.encoders import RunningMoments
from mtlkit.data.stream.source import DEFAULT_CHUNK_ROWS, StreamSource, Unit
from mtlkit.data.stream.split import SPLIT_NAMES, hash_split
from mtlkit.data.table import (
    TableTask,
    _check_roles,
    _column,
    _encode_targets,
    _is_numeric,
    check_table_options,
    split_rows,
)
from mtlkit.data.tabular import TabularPreprocessor
from mtlkit.tasks import Task, get_kind
from mtlkit.tasks.task import NamedTasks

STREAM_SPLITS = ("hash", "column")
"""Split methods of a stream (``random`` means ``hash``; ``stratified`` needs the whole table)."""


@dataclass
class StreamTable(NamedTasks):
    """A fitted stream: tasks, preprocessing and where each split's rows are (see the module
    docstring). Built by :func:`scan_table`; reads one unit at a time."""

    source: StreamSource
    specs: list[TableTask]
    tasks: list[Task]
    preprocessor: TabularPreprocessor
    units: list[Unit]
    unit_counts: np.ndarray
    """``(n_units, 3)`` int64: rows of train, val and test in each unit."""
    target_scaling: dict[str, tuple[float, float]]
    label_counts: dict[str, np.ndarray]
    """Class-label tasks: training rows labelled with each class (in ``class_names`` order)."""
    split: str = "hash"
    val_size: float = 0.15
    test_size: float = 0.15
    seed: int = 0
    id_column: str | None = None
    split_column: str | None = None
    target_columns: dict[str, str] = field(default_factory=dict)
    default_encoder: str = "mlp"

    @property
    def name(self) -> str:
        return Path(self.source.files[0]).stem if len(self.source.files) == 1 else "stream"

    @property
    def description(self) -> str:
        files = len(self.source.files)
        return f"table {self.source.path} ({files} file{'s' if files > 1 else ''}, streamed)"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Width of a transformed row: ``(n_dense + code columns,)``."""
        return (self.preprocessor.n_dense + len(self.preprocessor.embedding_specs),)

    def num_rows(self, split: str) -> int:
        """Rows of ``split`` (``train``, ``val``, ``test`` or ``all``) over all units."""
        if split == "all":
            return int(self.unit_counts.sum())
        return int(self.unit_counts[:, _split_code(split)].sum())

    @property
    def _columns(self) -> list[str]:
        return _used_columns(self.preprocessor.numeric + self.preprocessor.categorical, self)

    def split_codes(self, frame: pd.DataFrame, unit: Unit) -> np.ndarray:
        """Split code (0 train, 1 val, 2 test) of each row of a unit's frame."""
        return _split_codes(
            frame,
            unit,
            self.split,
            self.val_size,
            self.test_size,
            self.seed,
            self.id_column,
            self.split_column,
        )

    def _rows(self, i: int, split: str) -> tuple[pd.DataFrame, np.ndarray]:
        unit = self.units[i]
        frame = self.source.read(unit, self._columns)
        if split == "all":
            return frame, unit.first_row + np.arange(unit.rows)
        keep = np.flatnonzero(self.split_codes(frame, unit) == _split_code(split))
        return frame.iloc[keep], unit.first_row + keep

    def read_unit(self, i: int, split: str) -> tuple[Tensor, dict[str, Tensor]]:
        """The rows of ``split`` in unit ``i``, in file order: inputs ``(n, d)`` float32 and
        each task's targets (scaled as for training; missing labels as the kind marks them)."""
        frame, _ = self._rows(i, split)
        return self.encode(frame)

    def encode(self, frame: pd.DataFrame) -> tuple[Tensor, dict[str, Tensor]]:
        """Rows holding the feature and target columns as :meth:`read_unit` gives them: inputs
        transformed, targets encoded by the tasks (``predict``/``evaluate`` of a saved run read
        other files this way, a chunk at a time)."""
        inputs = torch.from_numpy(self.preprocessor.transform(frame))
        targets = {}
        for spec, task in zip(self.specs, self.tasks):
            _, y = _encode_targets(frame, spec, Path(self.source.path), known=task)
            if task.spec.scaled:
                mean, std = self.target_scaling[task.name]
                y = (y - mean) / std
            targets[task.name] = as_tensor_targets(y, task.kind)
        return inputs, targets

    def read_unit_rows(self, i: int, split: str) -> np.ndarray:
        """Global row numbers (from 0, over the files in order) of ``split``'s rows in unit
        ``i``, in the order :meth:`read_unit` returns them."""
        return self._rows(i, split)[1]


def _split_code(split: str) -> int:
    if split not in SPLIT_NAMES:
        raise ValueError(f"split: expected one of train, val, test or all, got {split!r}")
    return SPLIT_NAMES.index(split)


def _split_codes(
    frame: pd.DataFrame,
    unit: Unit,
    method: str,
    val_size: float,
    test_size: float,
    seed: int,
    id_column: str | None,
    split_column: str | None,
) -> np.ndarray:
    if method == "column":
        assert split_column is not None
        parts = split_rows(
            len(frame),
            "column",
            val_size,
            test_size,
            seed,
            split_column=_column(frame, split_column),
        )
        codes = np.full(len(frame), -1, dtype=np.int8)
        for code, rows in enumerate(parts):
            codes[rows] = code
        return codes
    ids = _column(frame, id_column) if id_column else None
    return hash_split(
        val_size, test_size, seed, rows=unit.first_row + np.arange(len(frame)), ids=ids
    )


def _used_columns(features: Sequence[str], table: Any) -> list[str]:
    """Features, target columns, then the id and split columns, each once."""
    columns = list(features) + [c for spec in table.specs for c in spec.columns]
    columns += [c for c in (table.id_column, table.split_column) if c]
    return list(dict.fromkeys(columns))


@dataclass
class _TaskStats:
    """What one pass learns of a task: classes (all rows), training class counts, labelled rows
    per split and the moments of the labelled training targets."""

    classes: set[str] = field(default_factory=set)
    train_classes: Counter[str] = field(default_factory=Counter)
    labelled: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))
    moments: RunningMoments = field(default_factory=RunningMoments)
    num_outputs: int = 0
    class_names: list[str] | None = None

    def update(self, spec: TableTask, frame: pd.DataFrame, codes: np.ndarray) -> None:
        kind = get_kind(spec.kind, spec.name)
        encoded = kind.encode(spec.name, [_column(frame, c) for c in spec.columns])
        values = encoded.values
        missing = kind.is_missing(values.astype(float))
        rows = ~missing if missing.ndim == 1 else ~missing.all(axis=1)
        self.labelled += np.bincount(codes[rows], minlength=3)
        train = codes == 0
        if kind.one_class_per_row:
            names = np.asarray(encoded.class_names or [], dtype=object)
            self.classes.update(names.tolist())
            self.train_classes.update(names[values[train & rows]].tolist())
        else:
            self.num_outputs, self.class_names = encoded.num_outputs, encoded.class_names
        if kind.scaled:
            present = values[train]
            present = present[~np.isnan(present)]
            self.moments.update(present.astype(np.float64).ravel())


def scan_table(
    path: str | Path,
    tasks: Sequence[TableTask],
    features: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    id_column: str | None = None,
    split: str = "hash",
    val_size: float = 0.15,
    test_size: float = 0.15,
    split_column: str | None = None,
    seed: int = 0,
    na_values: Sequence[str] = (),
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    encoder_options: Mapping[str, Any] | None = None,
) -> StreamTable:
    """Fit a :class:`StreamTable` in one pass over ``path`` (a Parquet/CSV file, a directory or
    a glob; see :mod:`mtlkit.data.stream.source`). The arguments mean what they mean for
    :func:`~mtlkit.data.table.load_table`; ``split`` is ``hash`` (``random`` is taken as
    ``hash``) or ``column``; ``encoder_options`` go to
    :class:`~mtlkit.data.TabularPreprocessor` (``onehot_max``, ``max_categories``...)."""
    split = "hash" if split == "random" else split
    if split == "stratified":
        raise DataError(
            "data.split: a stream splits by hash (of data.id_column or the row number) or by "
            "data.split_column, not 'stratified' (it needs the whole table)"
        )
    check_table_options(tasks, split, val_size, test_size, split_column, methods=STREAM_SPLITS)
    source = StreamSource(path, na_values, chunk_rows)
    where = Path(source.path)
    for spec in tasks:
        source.require(spec.columns, f"task {spec.name!r}")
    header = pd.DataFrame(columns=source.columns)
    features = _check_roles(header, where, tasks, features, categorical, id_column, split_column)
    table = StreamTable(
        source=source,
        specs=list(tasks),
        tasks=[],
        preprocessor=TabularPreprocessor(),
        units=[],
        unit_counts=np.zeros((0, 3), dtype=np.int64),
        target_scaling={},
        label_counts={},
        split=split,
        val_size=val_size,
        test_size=test_size,
        seed=seed,
        id_column=id_column,
        split_column=split_column,
        target_columns={t.name: "+".join(t.columns) for t in tasks},
    )
    columns = _used_columns(features, table)
    stats = {spec.name: _TaskStats() for spec in tasks}
    counts: list[np.ndarray] = []
    pre: TabularPreprocessor | None = None
    for unit, frame in source.scan(columns):
        if pre is None:
            cats = [c for c in features if c in categorical or not _is_numeric(frame, c, where)]
            numeric = [c for c in features if c not in cats]
            pre = TabularPreprocessor(numeric, cats, **dict(encoder_options or {}))
        codes = table.split_codes(frame, unit)
        counts.append(np.bincount(codes, minlength=3))
        for column in pre.numeric:  # every row's numbers checked, not only the training rows'
            numbers(_column(frame, column), f"feature column {column!r}")
        train = frame.iloc[np.flatnonzero(codes == 0)]
        if len(train):
            pre.partial_fit(train)
        for spec in tasks:
            stats[spec.name].update(spec, frame, codes)
        table.units.append(unit)
    if pre is None:
        raise DataError(f"data.path {source.path!r}: no data rows")
    table.unit_counts = np.asarray(counts, dtype=np.int64).reshape(-1, 3)
    for part, count in zip(SPLIT_NAMES, table.unit_counts.sum(axis=0)):
        if count == 0:
            raise DataError(
                f"data.split: the {part} split of {source.path!r} "
                f"({table.num_rows('all')} rows) is empty; use more rows or larger "
                "data.val_size/data.test_size"
            )
    table.preprocessor = pre.finish()
    for spec in tasks:
        task, label_counts, scaling = _finish_task(spec, stats[spec.name])
        table.tasks.append(task)
        if label_counts is not None:
            table.label_counts[spec.name] = label_counts
        if scaling is not None:
            table.target_scaling[spec.name] = scaling
    return table


def _finish_task(
    spec: TableTask, stats: _TaskStats
) -> tuple[Task, np.ndarray | None, tuple[float, float] | None]:
    """The task, its training class counts and target scaling; errors as ``load_table``'s."""
    kind = get_kind(spec.kind, spec.name)
    if stats.labelled.sum() == 0:
        raise DataError(f"task {spec.name!r}: no labelled rows in the data")
    if stats.labelled[0] == 0:
        raise DataError(f"task {spec.name!r}: no labelled rows in the training split")
    label_counts = scaling = None
    if kind.one_class_per_row:
        classes = sorted(stats.classes, key=natural_key)
        # the kind checks the number of classes and sizes the head, as for a whole column
        column = pd.Series(classes, name=spec.columns[0], dtype=object)
        encoded = kind.encode(spec.name, [column], classes)
        task = Task(spec.name, spec.kind, encoded.num_outputs, class_names=encoded.class_names)
        label_counts = np.array([stats.train_classes[c] for c in classes], dtype=np.int64)
        if np.count_nonzero(label_counts) < 2:
            raise DataError(
                f"task {spec.name!r}: needs at least 2 classes in its training split, "
                f"found {np.count_nonzero(label_counts)}"
            )
    else:
        task = Task(spec.name, spec.kind, stats.num_outputs, class_names=stats.class_names)
    if kind.scaled:
        scaling = stats.moments.filled(0, 0.0)
    return task, label_counts, scaling
