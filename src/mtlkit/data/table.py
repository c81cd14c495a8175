"""A user's own table (CSV or Parquet) as a multi-task dataset.

Each task names its kind and its target column(s): ``NAME:KIND:COLUMN`` on the command line
(``multilabel`` tasks join 0/1 columns with ``+``: ``tags:multilabel:is_a+is_b``). Feature
columns are the ones given, or every column that is neither a target nor the id/split column.
Numeric features are standardized and categorical ones (non-numeric columns, or those listed
as categorical) one-hot encoded by :class:`~mtlkit.data.TabularPreprocessor`, fitted on the
training rows only. An empty target cell is a missing label, masked for that task only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mtlkit.data.builtin._split import tabular_bundle
from mtlkit.data.bundle import DatasetBundle
from mtlkit.data.tabular import TabularPreprocessor
from mtlkit.tasks import IGNORE_INDEX, TASK_KINDS, Task

SPLIT_METHODS = ("random", "stratified", "column")


class DataError(ValueError):
    """The data itself is unusable; the message names the file, column, row or task."""


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


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"data file {str(path)!r} is empty")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"data file {str(path)!r} cannot be read: {message}") from None
    except Exception as err:  # pyarrow raises its own error types for corrupt files
        raise DataError(f"data file {str(path)!r} cannot be read: {err}") from None
    if frame.empty:
        raise DataError(f"data file {str(path)!r} has no data rows")
    frame.columns = [str(c).strip() for c in frame.columns]
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise DataError(f"data file {str(path)!r}: duplicate column {duplicated[0]!r}")
    return frame


def _require_column(frame: pd.DataFrame, column: str, where: str, path: Path) -> None:
    if column not in frame.columns:
        import difflib

        close = difflib.get_close_matches(column, list(frame.columns), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(f"{where}: column {column!r} is not in {str(path)!r}{hint}")


def _numeric_target(frame: pd.DataFrame, column: str, task: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna() & (frame[column].astype(str).str.strip() != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"task {task!r}: column {column!r}, line {row + 2} of {str(path)!r}: "
            f"non-numeric value {frame[column].iloc[row]!r}"
        )
    values = values.to_numpy(dtype=float)
    infinite = np.isinf(values)
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise DataError(
            f"task {task!r}: column {column!r}, line {row + 2} of {str(path)!r}: "
            f"non-finite value {frame[column].iloc[row]!r}"
        )
    return values


def _encode_targets(frame: pd.DataFrame, spec: TableTask, path: Path) -> tuple[Task, np.ndarray]:
    for column in spec.columns:
        _require_column(frame, column, f"task {spec.name!r}", path)
    if spec.kind == "regression":
        values = np.stack([_numeric_target(frame, c, spec.name, path) for c in spec.columns], 1)
        values = values[:, 0] if len(spec.columns) == 1 else values
        return Task(spec.name, "regression", num_outputs=len(spec.columns)), values
    if spec.kind == "multilabel":
        labels = []
        for column in spec.columns:
            v = _numeric_target(frame, column, spec.name, path)
            observed = v[~np.isnan(v)]
            if not np.isin(observed, (0, 1)).all():
                raise DataError(f"task {spec.name!r}: column {column!r} must hold 0/1 labels")
            labels.append(np.where(np.isnan(v), IGNORE_INDEX, v).astype(int))
        task = Task(spec.name, "multilabel", len(spec.columns), class_names=list(spec.columns))
        return task, np.stack(labels, 1)
    column = spec.columns[0]
    raw = frame[column]
    present = raw.notna() & (raw.astype(str).str.strip() != "")
    classes = sorted(raw[present].astype(str).str.strip().unique().tolist(), key=_natural_key)
    if spec.kind == "binary" and len(classes) > 2:
        raise DataError(
            f"task {spec.name!r}: a binary task needs at most 2 classes in column {column!r}, "
            f"found {len(classes)} ({', '.join(classes[:5])}...)"
        )
    index = {c: i for i, c in enumerate(classes)}
    codes = np.full(len(frame), IGNORE_INDEX, dtype=int)
    codes[present.to_numpy()] = [index[v] for v in raw[present].astype(str).str.strip()]
    size = 1 if spec.kind == "binary" else max(len(classes), 2)
    return Task(spec.name, spec.kind, size, class_names=classes), codes


def _natural_key(value: str) -> tuple:
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def split_rows(
    n: int,
    method: str,
    val_size: float,
    test_size: float,
    seed: int,
    strata: np.ndarray | None = None,
    split_column: pd.Series | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of train/val/test: random, stratified on ``strata``, or read from a column."""
    if method == "column":
        assert split_column is not None
        names = split_column.astype(str).str.strip().str.lower()
        unknown = sorted(set(names) - {"train", "val", "test"})
        if unknown:
            raise DataError(
                f"data.split.column: values must be train, val or test; found {unknown[0]!r}"
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
) -> DatasetBundle:
    """Read a table and build a :class:`DatasetBundle` (see the module docstring)."""
    path = Path(path)
    frame = read_table(path)
    if not tasks:
        raise DataError("data.tasks: at least one task is needed (--task NAME:KIND:COLUMN)")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise DataError(f"data.tasks: task names must be unique, got {names}")
    if split not in SPLIT_METHODS:
        raise DataError(f"data.split: expected one of {', '.join(SPLIT_METHODS)}, got {split!r}")
    if not (0 <= val_size < 1 and 0 < test_size < 1 and val_size + test_size < 1):
        raise DataError("data.val_size/test_size: need 0 <= val_size, 0 < test_size, sum < 1")
    for column in (id_column, split_column):
        if column:
            _require_column(frame, column, "data", path)
    targets_used = {c for t in tasks for c in t.columns}
    reserved = targets_used | {c for c in (id_column, split_column) if c}
    if features is None:
        features = [c for c in frame.columns if c not in reserved]
    for column in features:
        _require_column(frame, column, "data.features", path)
        if column in targets_used:
            raise DataError(f"data.features: column {column!r} is also a task's target")
    for column in categorical:
        _require_column(frame, column, "data.categorical", path)
    if not features:
        raise DataError(f"data.features: no feature columns left in {str(path)!r}")

    built = [_encode_targets(frame, spec, path) for spec in tasks]
    task_list = [t for t, _ in built]
    targets = {t.name: y for t, y in built}

    strata = None
    if split == "stratified":
        if stratify is None:
            raise DataError("data.stratify: name the task to stratify on (split: stratified)")
        if stratify not in targets:
            raise DataError(f"data.stratify: unknown task {stratify!r}")
        strata = targets[stratify]
        if strata.ndim != 1:
            raise DataError(f"data.stratify: task {stratify!r} has several target columns")
    if split == "column" and not split_column:
        raise DataError("data.split_column: name the column holding train/val/test")
    train, val, test = split_rows(
        len(frame),
        split,
        val_size,
        test_size,
        seed,
        strata,
        frame[split_column] if split == "column" else None,
    )
    for part, rows in (("train", train), ("val", val), ("test", test)):
        if len(rows) == 0:
            raise DataError(
                f"data.split: the {part} split of {str(path)!r} ({len(frame)} rows) is empty; "
                "use more rows or larger data.val_size/data.test_size"
            )
    _check_labels(task_list, targets, train, path)

    numeric = [c for c in features if c not in categorical and _is_numeric(frame[c], c, path)]
    cats = [c for c in features if c not in numeric]
    pre = TabularPreprocessor(numeric, cats).fit(frame.iloc[train])
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


def _is_numeric(series: pd.Series, column: str, path: Path) -> bool:
    """Whether a feature is numeric; a mostly numeric column with a stray word is an error."""
    if pd.api.types.is_numeric_dtype(series):
        return True
    present = series.dropna()
    converted = pd.to_numeric(present, errors="coerce")
    if len(converted) == 0 or converted.isna().all():
        return False
    if converted.isna().any() and converted.notna().mean() >= 0.9:
        row = int(present.index[converted.isna().to_numpy()][0])
        raise DataError(
            f"feature column {column!r}, line {row + 2} of {str(path)!r}: non-numeric value "
            f"{series.loc[row]!r} in a numeric column (list it in data.categorical if intended)"
        )
    return not converted.isna().any()


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
        if task.kind in ("multiclass", "binary"):
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
        detail = ""
        if y is not None:
            mask = task.row_mask(y)
            if task.kind in ("multiclass", "binary"):
                values, freq = torch.unique(y[mask], return_counts=True)
                names = task.class_names or [str(i) for i in range(task.num_outputs + 1)]
                detail = "classes " + ", ".join(
                    f"{names[int(v)] if int(v) < len(names) else int(v)}={int(f)}"
                    for v, f in zip(values, freq)
                )
            elif task.kind == "regression" and mask.any():
                mean, std = bundle.target_scaling.get(task.name, (0.0, 1.0))
                vals = y[mask] * std + mean
                detail = f"range [{float(vals.min()):.4g}, {float(vals.max()):.4g}]"
            elif task.kind == "multilabel":
                pos = (y == 1).sum(0).tolist()
                detail = "positives " + ", ".join(
                    f"{n}={p}" for n, p in zip(task.class_names or [], pos)
                )
        lines.append(f"  {task.name} ({task.kind}): labelled {', '.join(counts)}; {detail}")
    return lines
