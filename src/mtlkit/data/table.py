"""A user's own table (CSV or Parquet) as a multi-task dataset.

Each task names its kind and its target column(s): ``NAME:KIND:COLUMN`` on the command line
(``multilabel`` tasks join 0/1 columns with ``+``: ``tags:multilabel:is_a+is_b``). Feature
columns are the ones given, or every column that is neither a target nor the id/split column.
Numeric features are standardized and categorical ones (non-numeric columns, or those listed
as categorical) one-hot encoded, or turned into embedding codes when they have more than
``onehot_max`` categories, by :class:`~mtlkit.data.TabularPreprocessor`, fitted on the
training rows only (a streamed table uses the same preprocessor). Cells are read by the rules
of :mod:`mtlkit.data.cells`: only an empty cell (or a token of ``na_values``) is missing; an
empty target cell is a missing label, masked for that task only.

Nothing is guessed silently: a duplicated or empty header name, a row with more or fewer fields
than the header, a nested Parquet column, a mostly numeric column with a few words in it, an
infinite or float32-overflowing number, encoder options naming a column that is not a
categorical feature and contradictory column roles are errors naming the file, column, line,
option or task.
"""

from __future__ import annotations

import csv
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mtlkit.data.builtin._split import make_split, tabular_bundle
from mtlkit.data.bundle import DatasetBundle
from mtlkit.data.cells import DataError, location, na_hint, numeric_share
from mtlkit.data.stream.split import hash_split
from mtlkit.data.tabular import TabularPreprocessor
from mtlkit.tasks import TASK_KINDS, Task, get_kind

SPLIT_METHODS = ("random", "stratified", "column", "hash")
MOSTLY_NUMERIC = 0.5
"""A feature column with at least this share of numeric cells and some words is an error."""
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass
class TableTask:
    """How one task is read from a table."""

    name: str
    kind: str
    columns: list[str]

    @classmethod
    def parse(cls, spec: str) -> TableTask:
        """Parse ``NAME:KIND:COLUMN`` (``COLUMN`` defaults to ``NAME``)."""
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise DataError(
                f"--task {spec!r}: expected NAME:KIND:COLUMN, e.g. price:regression:price"
            )
        name, kind = parts[0], parts[1]
        if kind not in TASK_KINDS:
            raise DataError(f"--task {spec!r}: kind must be one of {', '.join(TASK_KINDS)}")
        columns = parts[2].split("+") if len(parts) == 3 else [name]
        return cls(name, kind, columns)


def read_table(path: str | Path, na_values: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV or Parquet file; errors name the file (and the line or column at fault).

    Rows are numbered from 0 and ``attrs["source"]`` holds the path, so that later errors can
    name the line. Every missing cell (empty, blank, null or a token of ``na_values``) is NA.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"data file {str(path)!r} is empty")
    parquet = path.suffix.lower() in PARQUET_SUFFIXES
    frame = _read_parquet(path) if parquet else _read_csv(path, na_values)
    if frame.empty:
        raise DataError(f"data file {str(path)!r} has no data rows")
    frame = _mark_missing(frame, na_values)
    frame.attrs["source"] = str(path)
    return frame


def _check_header(names: Sequence[object], path: Path) -> list[str]:
    """Stripped column names; an empty or duplicated name is an error."""
    stripped = [str(n).strip() for n in names]
    for i, name in enumerate(stripped):
        if not name:
            raise DataError(f"data file {str(path)!r}: column {i + 1} of the header has no name")
    seen: dict[str, int] = {}
    for i, name in enumerate(stripped):
        if name in seen:
            raise DataError(
                f"data file {str(path)!r}: duplicate column {name!r} "
                f"(columns {seen[name] + 1} and {i + 1})"
            )
        seen[name] = i
    return stripped


def _read_csv(path: Path, na_values: Sequence[str]) -> pd.DataFrame:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            names = _check_header(header, path)
            for record in reader:
                if record and len(record) != len(names):
                    raise DataError(
                        f"data file {str(path)!r}, line {reader.line_num}: {len(record)} fields, "
                        f"the header has {len(names)}"
                    )
        frame = pd.read_csv(
            path,
            keep_default_na=False,
            na_values=["", *na_values],
            encoding="utf-8-sig",
            low_memory=False,
        )
    except UnicodeDecodeError:
        raise DataError(f"data file {str(path)!r} cannot be read: it is not UTF-8 text") from None
    except (csv.Error, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"data file {str(path)!r} cannot be read: {message}") from None
    frame.columns = names
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        fields = [f for f in schema if not f.name.startswith("__index_level_")]
        names = _check_header([f.name for f in fields], path)
        for field, name in zip(fields, names):
            if pa.types.is_nested(field.type):
                raise DataError(
                    f"data file {str(path)!r}: column {name!r} is nested ({field.type}); "
                    "flatten it into scalar columns"
                )
        frame = pd.read_parquet(path)
    except DataError:
        raise
    except Exception as err:  # pyarrow raises its own error types for corrupt files
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"data file {str(path)!r} cannot be read: {message}") from None
    # a named index saved by pandas (df.set_index("id")) is a column again; a default one goes
    frame = frame.reset_index(drop=all(n is None for n in frame.index.names))
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _mark_missing(frame: pd.DataFrame, na_values: Sequence[str]) -> pd.DataFrame:
    """Blank text cells and the user's NA tokens become NA (a column of numbers then numeric)."""
    tokens = {""} | {str(t).strip() for t in na_values}
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
            continue
        text = series.astype(str).str.strip()
        missing = series.notna() & text.isin(tokens)
        if missing.any():
            series = series.where(~missing)
            number = pd.to_numeric(series, errors="coerce")
            frame[column] = number if number.notna().sum() == series.notna().sum() else series
    return frame


def _require_column(frame: pd.DataFrame, column: str, where: str, path: Path) -> None:
    if column not in frame.columns:
        close = difflib.get_close_matches(column, list(frame.columns), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(f"{where}: column {column!r} is not in {str(path)!r}{hint}")


def _column(frame: pd.DataFrame, column: str) -> pd.Series:
    series = frame[column]
    series.attrs = frame.attrs
    return series


def _encode_targets(
    frame: pd.DataFrame, spec: TableTask, path: Path, known: Task | None = None
) -> tuple[Task, np.ndarray]:
    """A task and its targets encoded by its kind; ``known`` (a trained run's task) fixes the
    classes."""
    for column in spec.columns:
        _require_column(frame, column, f"task {spec.name!r}", path)
    kind = get_kind(spec.kind, spec.name)
    classes = list(known.class_names or []) if known is not None else None
    encoded = kind.encode(spec.name, [_column(frame, c) for c in spec.columns], classes)
    if known is not None:
        return known, encoded.values
    task = Task(spec.name, spec.kind, encoded.num_outputs, class_names=encoded.class_names)
    return task, encoded.values


def split_rows(
    n: int,
    method: str,
    val_size: float,
    test_size: float,
    seed: int,
    strata: np.ndarray | None = None,
    split_column: pd.Series | None = None,
    ids: pd.Series | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of train/val/test: random, stratified on ``strata``, read from a column, or
    ``hash``: by a hash of each row's id (``ids``) or row number, as a stream splits
    (:mod:`mtlkit.data.stream.split`)."""
    if method == "hash":
        codes = hash_split(val_size, test_size, seed, rows=np.arange(n), ids=ids)
        return tuple(np.flatnonzero(codes == part) for part in range(3))
    if method == "column":
        assert split_column is not None
        names = split_column.astype(str).str.strip().str.lower()
        names = names.where(split_column.notna(), "")
        unknown = sorted(set(names) - {"train", "val", "test"})
        if unknown:
            raise DataError(
                f"data.split_column: values must be train, val or test; found {unknown[0]!r}"
            )
        return tuple(np.flatnonzero((names == s).to_numpy()) for s in ("train", "val", "test"))
    rng = np.random.default_rng(seed)
    if method == "random" or strata is None:
        order = rng.permutation(n)
        n_test, n_val = int(round(n * test_size)), int(round(n * val_size))
        return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]
    parts: list[list[int]] = [[], [], []]
    for value in np.unique(strata):
        idx = rng.permutation(np.flatnonzero(strata == value))
        n_test, n_val = int(round(len(idx) * test_size)), int(round(len(idx) * val_size))
        parts[2] += idx[:n_test].tolist()
        parts[1] += idx[n_test : n_test + n_val].tolist()
        parts[0] += idx[n_test + n_val :].tolist()
    return tuple(np.sort(np.asarray(p, dtype=int)) for p in parts)


def check_table_options(
    tasks: Sequence[TableTask],
    split: str,
    val_size: float,
    test_size: float,
    split_column: str | None = None,
    stratify: str | None = None,
    methods: Sequence[str] = SPLIT_METHODS,
) -> None:
    """The task list and split options of a table (in memory or streamed); errors name the
    field."""
    if split not in methods:
        raise DataError(f"data.split: expected one of {', '.join(methods)}, got {split!r}")
    if not (0 <= val_size < 1 and 0 < test_size < 1 and val_size + test_size < 1):
        raise DataError("data.val_size/test_size: need 0 <= val_size, 0 < test_size, sum < 1")
    if not tasks:
        raise DataError("data.tasks: at least one task is needed (--task NAME:KIND:COLUMN)")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise DataError(f"data.tasks: task names must be unique, got {names}")
    if split == "column" and not split_column:
        raise DataError("data.split_column: name the column holding train/val/test")
    if split_column and split != "column":
        raise DataError(f"data.split_column: only used with data.split: column, not {split!r}")
    if stratify and split != "stratified":
        raise DataError(f"data.stratify: only used with data.split: stratified, not {split!r}")


def load_table(
    path: str | Path,
    tasks: Sequence[TableTask],
    features: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    id_column: str | None = None,
    split: str = "random",
    val_size: float = 0.15,
    test_size: float = 0.15,
    stratify: str | None = None,
    split_column: str | None = None,
    seed: int = 0,
    na_values: Sequence[str] = (),
    encoder_options: Mapping[str, Any] | None = None,
    fitted: DatasetBundle | None = None,
) -> DatasetBundle:
    """Read a table and build a :class:`DatasetBundle` (see the module docstring).

    ``encoder_options`` are the keyword options of :class:`~mtlkit.data.TabularPreprocessor`
    (``onehot_max``, ``max_categories``, ``min_frequency``, ``hash_buckets``, ``embedding_dim``).

    ``fitted`` (the tasks, preprocessor and target scaling of a trained run) applies that run's
    preprocessing instead of fitting it: a class it does not know is an error. With ``fitted``,
    ``split="all"`` puts every row in each split (evaluating a new labelled file).
    """
    path = Path(path)
    methods = SPLIT_METHODS if fitted is None else (*SPLIT_METHODS, "all")
    check_table_options(tasks, split, val_size, test_size, split_column, stratify, methods)
    frame = read_table(path, na_values)
    if fitted is not None:
        assert fitted.preprocessor is not None
        features = fitted.preprocessor.numeric + fitted.preprocessor.categorical
        categorical = fitted.preprocessor.categorical
    features = _check_roles(frame, path, tasks, features, categorical, id_column, split_column)

    known = {t.name: t for t in fitted.tasks} if fitted is not None else {}
    built = [_encode_targets(frame, spec, path, known.get(spec.name)) for spec in tasks]
    task_list = [t for t, _ in built]
    targets = {t.name: y for t, y in built}

    strata = None
    if split == "stratified":
        strata = _strata(stratify, task_list, targets)
    if split == "all":
        rows = np.arange(len(frame))
        train, val, test = rows, rows, rows
    else:
        train, val, test = split_rows(
            len(frame),
            split,
            val_size,
            test_size,
            seed,
            strata,
            frame[split_column] if split == "column" else None,
            _column(frame, id_column) if split == "hash" and id_column else None,
        )
    for part, rows in (("train", train), ("val", val), ("test", test)):
        if len(rows) == 0:
            raise DataError(
                f"data.split: the {part} split of {str(path)!r} ({len(frame)} rows) is empty; "
                "use more rows or larger data.val_size/data.test_size"
            )
    if fitted is not None:
        return _apply_fitted(fitted, path, frame, task_list, targets, (train, val, test))
    _check_labels(task_list, targets, train, path)

    cats = [c for c in features if c in categorical or not _is_numeric(frame, c, path)]
    numeric = [c for c in features if c not in cats]
    pre = TabularPreprocessor(numeric, cats, **(encoder_options or {})).fit(frame.iloc[train])
    return tabular_bundle(
        path.stem,
        task_list,
        pre.transform(frame),
        targets,
        (train, val, test),
        preprocessor=pre,
        target_columns={t.name: "+".join(t.columns) for t in tasks},
        description=f"table {path.name}",
    )


def _check_roles(
    frame: pd.DataFrame,
    path: Path,
    tasks: Sequence[TableTask],
    features: Sequence[str] | None,
    categorical: Sequence[str],
    id_column: str | None,
    split_column: str | None,
) -> list[str]:
    """The feature columns; a column given two roles (feature and target, id...) is an error."""
    targets = {c: t.name for t in tasks for c in t.columns}
    roles = {}
    for column, role in ((id_column, "id_column"), (split_column, "split_column")):
        if column:
            _require_column(frame, column, f"data.{role}", path)
            if column in targets:
                raise DataError(
                    f"data.{role}: column {column!r} is task {targets[column]!r}'s target"
                )
            roles[column] = role
    if features is None:
        features = [c for c in frame.columns if c not in targets and c not in roles]
    if len(set(features)) != len(features):
        twice = next(c for c in features if list(features).count(c) > 1)
        raise DataError(f"data.features: column {twice!r} is listed twice")
    for column in features:
        _require_column(frame, column, "data.features", path)
        if column in targets:
            raise DataError(f"data.features: column {column!r} is also a task's target")
        if column in roles:
            raise DataError(f"data.features: column {column!r} is the {roles[column]}")
    for column in categorical:
        _require_column(frame, column, "data.categorical", path)
        if column in targets:
            raise DataError(
                f"data.categorical: column {column!r} is task {targets[column]!r}'s target, "
                "not a feature (a task's kind says how its target is encoded)"
            )
        if column not in features:
            raise DataError(f"data.categorical: column {column!r} is not a feature column")
    if not features:
        raise DataError(f"data.features: no feature columns left in {str(path)!r}")
    return list(features)


def _strata(stratify: str | None, tasks: list[Task], targets: dict[str, np.ndarray]):
    if stratify is None:
        raise DataError("data.stratify: name the task to stratify on (split: stratified)")
    kinds = {t.name: t.kind for t in tasks}
    if stratify not in kinds:
        raise DataError(f"data.stratify: unknown task {stratify!r}; tasks are {', '.join(kinds)}")
    if not next(t for t in tasks if t.name == stratify).spec.one_class_per_row:
        raise DataError(
            f"data.stratify: task {stratify!r} is a {kinds[stratify]} task; stratify on a "
            "binary or multiclass task"
        )
    return targets[stratify]


def _is_numeric(frame: pd.DataFrame, column: str, path: Path) -> bool:
    """Whether a feature is numeric; a mostly numeric column with some words is an error."""
    series = _column(frame, column)
    share = numeric_share(series)
    if share == 1.0 or share < MOSTLY_NUMERIC:
        return share == 1.0
    present = series.dropna()
    words = present[pd.to_numeric(present, errors="coerce").isna()]
    first, token = words.index[0], words.iloc[0]
    others = ", ".join(f"{v!r}" for v in words.iloc[1:4])
    more = f"; {len(words)} such cells, also {others}" if len(words) > 1 else ""
    raise DataError(
        f"feature column {column!r}, {location(frame, first)}: non-numeric value {token!r} in a "
        f"mostly numeric column{more}{na_hint(token)}; list the column in data.categorical "
        "(--categorical) to one-hot encode it"
    )


def _apply_fitted(
    fitted: DatasetBundle,
    path: Path,
    frame: pd.DataFrame,
    tasks: list[Task],
    targets: dict[str, np.ndarray],
    splits: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> DatasetBundle:
    """A bundle made with a trained run's preprocessing, target scaling and classes."""
    assert fitted.preprocessor is not None
    features = fitted.preprocessor.transform(frame)
    scaled = dict(targets)
    for task in tasks:
        if task.spec.scaled:
            mean, std = fitted.target_scaling.get(task.name, (0.0, 1.0))
            scaled[task.name] = (targets[task.name] - mean) / std
    return DatasetBundle(
        name=fitted.name,
        tasks=tasks,
        train=make_split(features, scaled, tasks, splits[0]),
        val=make_split(features, scaled, tasks, splits[1]),
        test=make_split(features, scaled, tasks, splits[2]),
        input_shape=(features.shape[1],),
        preprocessor=fitted.preprocessor,
        target_scaling=dict(fitted.target_scaling),
        target_columns=dict(fitted.target_columns),
        description=f"table {path.name}",
    )


def _check_labels(
    tasks: list[Task], targets: dict[str, np.ndarray], train: np.ndarray, path: Path
) -> None:
    for task in tasks:
        y = targets[task.name]
        labelled = task.row_mask(torch.as_tensor(y)).numpy()
        if not labelled.any():
            raise DataError(f"task {task.name!r}: no labelled rows in {str(path)!r}")
        if not labelled[train].any():
            raise DataError(f"task {task.name!r}: no labelled rows in the training split")
        if task.spec.one_class_per_row:
            seen = np.unique(y[train][labelled[train]])
            if len(seen) < 2:
                raise DataError(
                    f"task {task.name!r}: needs at least 2 classes in its training split, "
                    f"found {len(seen)}"
                )


def label_report(bundle: DatasetBundle) -> list[str]:
    """Per task: labelled rows in each split, and class balance or target range (train)."""
    lines = []
    for task in bundle.tasks:
        counts = []
        for split_name in ("train", "val", "test"):
            split = getattr(bundle, split_name)
            if not hasattr(split, "targets"):
                continue
            y = split.targets[task.name]
            counts.append(f"{split_name} {int(task.row_mask(y).sum())}/{len(y)}")
        y = bundle.train.targets[task.name] if hasattr(bundle.train, "targets") else None
        scaling = bundle.target_scaling.get(task.name)
        detail = "" if y is None else task.spec.summary(task, y, scaling)
        lines.append(f"  {task.name} ({task.kind}): labelled {', '.join(counts)}; {detail}")
    return lines
