"""A finished run read back from its directory: :class:`TrainedRun` and :func:`load`.

``mtlkit.load(run_dir)`` gives the run's config, tasks, best model, tabular preprocessing and
target scaling as one object; :meth:`TrainedRun.predict` applies the stored preprocessing and
unscaling to new rows (or to input tensors of an image or built-in run),
:meth:`TrainedRun.evaluate` scores a labelled table and :meth:`TrainedRun.export` writes the
model for serving (see :mod:`mtlkit.runs.export`). The command line's ``predict`` and
``evaluate`` call these.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mtlkit.config import Config, ConfigError, load_config
from mtlkit.data import DatasetBundle, TabularPreprocessor
from mtlkit.data.stream.source import DEFAULT_CHUNK_ROWS
from mtlkit.models import MultiTaskModel
from mtlkit.runs.build import build_model, load_bundle, table_split_options
from mtlkit.runs.stream import stream_digest
from mtlkit.tasks import Task
from mtlkit.training.checkpoint import FileError, atomic_write, load_file, read_json
from mtlkit.training.evaluation import evaluate as evaluate_split

if TYPE_CHECKING:
    import pandas as pd

RUN_FILES_NEEDED = ("config.yaml", "tasks.json", "model.pt")


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file (a table run records its data file's, to refuse a changed file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_digest(config: Config) -> str | None:
    """SHA-256 of a table run's data: its file, or a stream's files (``None``: no table)."""
    if not config.data.path:
        return None
    if config.data.stream:
        return stream_digest(config.data.path)
    return file_digest(config.data.path)


def bundle_metadata(bundle: DatasetBundle, config: Config | None = None) -> dict[str, Any]:
    """The content of ``tasks.json``: what a trained model needs to read new rows."""
    return {
        "data_sha256": data_digest(config) if config else None,
        "dataset": bundle.name,
        "tasks": [t.to_dict() for t in bundle.tasks],
        "input_shape": list(bundle.input_shape),
        "target_scaling": {k: list(v) for k, v in bundle.target_scaling.items()},
        "target_columns": bundle.target_columns,
        "preprocessor": bundle.preprocessor.to_dict() if bundle.preprocessor else None,
    }


def _default_encoder(input_shape: tuple[int, ...]) -> str:
    return "lenet" if len(input_shape) == 3 else "mlp"


@dataclass
class TrainedRun:
    """A finished run: config, tasks, best model (eval mode), preprocessing, target scaling.

    ``target_scaling[task] = (mean, std)``: a regression head predicts ``(y - mean) / std``;
    :meth:`predict` and :meth:`evaluate` report ``mean + std · output``, the original units.
    """

    path: Path
    config: Config
    tasks: list[Task]
    model: MultiTaskModel
    dataset: str
    input_shape: tuple[int, ...]
    preprocessor: TabularPreprocessor | None = None
    target_scaling: dict[str, tuple[float, float]] = field(default_factory=dict)
    target_columns: dict[str, str] = field(default_factory=dict)
    data_sha256: str | None = None

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def is_table_run(self) -> bool:
        """Whether the run was trained on the user's own table (``data.path``)."""
        return self.preprocessor is not None and bool(self.config.data.path)

    def fitted(self) -> DatasetBundle:
        """A data-less :class:`DatasetBundle` carrying the run's tasks and preprocessing."""
        return DatasetBundle(
            name=self.dataset,
            tasks=self.tasks,
            train=None,  # type: ignore[arg-type]
            val=None,  # type: ignore[arg-type]
            test=None,  # type: ignore[arg-type]
            input_shape=self.input_shape,
            default_encoder=self.config.model.encoder or _default_encoder(self.input_shape),
            preprocessor=self.preprocessor,
            target_scaling=dict(self.target_scaling),
            target_columns=dict(self.target_columns),
        )

    # -- prediction -------------------------------------------------------------------------

    def features(self, frame: pd.DataFrame) -> Tensor:
        """The model's input for the rows of ``frame``: the stored preprocessing applied.

        Numeric column ``c``: a missing cell becomes the training median, then
        ``(x - mean_c) / std_c``; then one 0/1 missing-indicator column per entry of
        ``indicators``; then each categorical column one-hot over its training categories
        (a missing or unseen category is all zeros). The values are in
        ``preprocessor.to_dict()``.
        """
        pre = self.preprocessor
        if pre is None:
            raise ConfigError(
                f"predict: run {str(self.path)!r} was not trained on tabular data; "
                "pass the model's input tensor instead of a table"
            )
        missing = [c for c in pre.numeric + pre.categorical if c not in frame.columns]
        if missing:
            where = frame.attrs.get("source", "the table")
            raise ConfigError(
                f"--input: {str(where)!r} lacks feature column(s) {', '.join(missing)}"
            )
        return torch.as_tensor(pre.transform(frame))

    def outputs(self, inputs: Tensor) -> dict[str, Tensor]:
        """The model's raw per-task outputs (logits; scaled regression values)."""
        with torch.no_grad():
            return self.model(inputs)

    def predict(
        self, data: pd.DataFrame | Tensor, *, all_probabilities: bool = False
    ) -> pd.DataFrame:
        """One row per input row: each task's prediction in its original units or labels.

        ``data``: a table with the run's feature columns (the stored preprocessing is applied),
        or a tensor of model inputs (an image or built-in run, or already preprocessed rows).
        A table's cells are read as :meth:`evaluate` and ``mtlkit predict`` read them: a token
        of the run's ``data.na_values`` is missing (also in a numeric column).
        Columns: ``task`` (value or class label) and ``task_probability`` (the chosen class's
        probability); a multilabel task gives ``task=label`` and ``task=label_probability``;
        ``all_probabilities`` adds ``task_probability=class`` for every class. A non-finite
        model output is an error naming the task and the first row.
        """
        import pandas as pd

        if isinstance(data, Tensor):
            inputs, index, frame = data, pd.RangeIndex(len(data)), None
        else:
            _check_frame(data, "predict")
            frame = self._as_read(data)
            inputs, index = self.features(frame), data.index
        outputs = self.outputs(inputs)
        _check_finite(outputs, len(index), frame)
        table = pd.DataFrame(index=index)
        for task in self.tasks:
            scaling = self.target_scaling.get(task.name)
            _add_prediction_columns(table, task, outputs[task.name], scaling, all_probabilities)
        return table

    def predict_file(
        self,
        input: str | Path,
        output: str | Path,
        *,
        id_column: str | None = None,
        all_probabilities: bool = False,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> dict[str, int]:
        """Write :meth:`predict`'s rows for every row of ``input`` (a CSV/Parquet file, a
        directory or a glob of them) to the CSV file ``output``, in input order.

        Read ``chunk_rows`` rows at a time (memory does not grow with the file); the output is
        written beside ``output`` and renamed into place at the end, so an error (a bad row,
        a non-finite output) leaves no partial file. ``id_column`` is copied as the first
        column. Returns the rows written and the preprocessor's coverage counts (rows with every
        feature missing, rows with an unseen category), summed over the chunks.
        """
        from mtlkit.cells import DataError
        from mtlkit.data.stream import StreamSource

        pre = self.preprocessor
        if pre is None:
            raise ConfigError(
                f"predict: run {str(self.path)!r} was not trained on tabular data; "
                "predict reads rows of feature columns from a CSV or Parquet file"
            )
        source = StreamSource(input, self.config.data.na_values, chunk_rows)
        target = Path(output).resolve()
        if any(file.resolve() == target for file in source.files):
            which = "the input file" if len(source.files) == 1 else "one of the input files"
            raise ConfigError(f"--output: {str(output)!r} is {which}; name another file")
        features = pre.numeric + pre.categorical
        missing = [c for c in features if c not in source.columns]
        if missing:
            raise ConfigError(
                f"--input: {str(input)!r} lacks feature column(s) {', '.join(missing)}"
            )
        if id_column and id_column not in source.columns:
            raise ConfigError(f"--id-column: column {id_column!r} is not in {str(input)!r}")
        columns = list(dict.fromkeys(features + ([id_column] if id_column else [])))
        counts = {"rows": 0, "all_features_missing": 0, "unseen_category": 0}

        def write(handle) -> None:
            text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
            for _, frame in source.scan(columns):
                table = self.predict(frame, all_probabilities=all_probabilities)
                if id_column:
                    table.insert(0, id_column, frame[id_column])
                table.to_csv(text, index=False, header=counts["rows"] == 0)
                counts["rows"] += len(table)
                for key, value in pre.coverage(frame).items():
                    counts[key] += value
            if counts["rows"] == 0:
                raise DataError(f"--input {str(input)!r} has no data rows")
            text.flush()
            text.detach()

        atomic_write(output, write)
        return counts

    # -- evaluation -------------------------------------------------------------------------

    def evaluate(
        self,
        data: pd.DataFrame | str | Path | None = None,
        split: str | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> dict[str, dict[str, float]]:
        """``{task: {metric: value, "loss": ...}}`` on every row of a labelled table, or on a split.

        ``data``: a labelled table (a DataFrame, or a CSV/Parquet file, directory or glob, read
        ``chunk_rows`` rows at a time) with the run's feature and target columns, read with the
        run's stored preprocessing, classes and target scaling. Without ``data``: the run's own
        ``split`` (default ``test``; a streamed run's, a chunk at a time); a table run's data
        must be unchanged (same SHA-256) so that the split holds the same rows.
        """
        if data is not None:
            if not self.is_table_run:
                raise ConfigError(f"--data: run {str(self.path)!r} was not trained on a table")
            if split is not None:
                raise ConfigError("--split: with --data every row of the file is evaluated")
            if isinstance(data, str | Path):
                batches = self._labelled_chunks(data, chunk_rows)
                return evaluate_split(
                    self.model, self.tasks, batches, target_scaling=self.target_scaling
                )
            _check_frame(data, "evaluate")
            bundle, split = self._labelled_table(data), "test"
        elif self.is_table_run and self.config.data.stream:
            return self._evaluate_own_stream(split or "test")
        elif self.is_table_run:
            bundle, split = self._own_table(), split or "test"
        else:
            bundle, split = load_bundle(self.config), split or "test"
        return evaluate_split(
            self.model, bundle.tasks, getattr(bundle, split), target_scaling=bundle.target_scaling
        )

    def _labelled_chunks(
        self, path: str | Path, chunk_rows: int
    ) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        """The labelled rows of ``path``, a chunk at a time, as the run's model reads them."""
        import numpy as np
        import pandas as pd

        from mtlkit.cells import DataError
        from mtlkit.data.stream import StreamSource, StreamTable
        from mtlkit.data.table import _require_column

        source = StreamSource(path, self.config.data.na_values, chunk_rows)
        pre, specs = self.preprocessor, self._specs()
        assert pre is not None  # a table run
        header, where = pd.DataFrame(columns=source.columns), Path(source.path)
        for column in pre.numeric + pre.categorical:
            _require_column(header, column, "feature", where)
        for spec in specs:
            for column in spec.columns:
                _require_column(header, column, f"task {spec.name!r}", where)
        columns = list(dict.fromkeys(pre.numeric + pre.categorical))
        columns += [c for spec in specs for c in spec.columns if c not in columns]
        table = StreamTable(
            source=source,
            specs=specs,
            tasks=self.tasks,
            preprocessor=pre,
            units=[],
            unit_counts=np.zeros((0, 3), dtype=np.int64),
            target_scaling=dict(self.target_scaling),
            label_counts={},
        )
        rows = 0
        for _, frame in source.scan(columns):
            rows += len(frame)
            yield table.encode(frame)
        if rows == 0:
            raise DataError(f"--data {str(path)!r} has no data rows")

    def _evaluate_own_stream(self, split: str) -> dict[str, dict[str, float]]:
        """A split of the streamed table the run trained on, read a unit at a time."""
        from mtlkit.data.stream import StreamLoader
        from mtlkit.runs.stream import load_stream

        path = self.config.data.path
        try:
            unchanged = self.data_sha256 == data_digest(self.config)
        except (OSError, ValueError):
            raise ConfigError(f"evaluate: the run's data {path!r} no longer exists") from None
        if not unchanged:
            raise ConfigError(
                f"evaluate: data {path!r} changed since the run was trained, so its splits "
                f"would hold other rows; pass --data {path!r} to evaluate every row of it"
            )
        fitted = load_stream(self.config).table  # the same rows in each split (same data)
        table = replace(fitted, tasks=self.tasks, preprocessor=self.preprocessor)
        loader = StreamLoader(table, split, 4096, shuffle=False)
        return evaluate_split(self.model, self.tasks, loader, target_scaling=self.target_scaling)

    def _specs(self) -> list[Any]:
        from mtlkit.data.table import TableTask

        return [
            TableTask(t.name, t.kind, self.target_columns.get(t.name, t.name).split("+"))
            for t in self.tasks
        ]

    def _labelled_table(self, data: pd.DataFrame | str | Path) -> DatasetBundle:
        from mtlkit.data.table import load_table

        na_values = self.config.data.na_values
        if isinstance(data, (str, Path)):
            return load_table(
                data, self._specs(), split="all", na_values=na_values, fitted=self.fitted()
            )
        with _as_file(data) as path:  # load_table reads files only
            return load_table(
                path, self._specs(), split="all", na_values=na_values, fitted=self.fitted()
            )

    def _as_read(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the run's ``na_values`` missing, as a file of it would be read."""
        from mtlkit.data.table import read_table

        na_values = self.config.data.na_values
        if not na_values or frame.empty or "source" in frame.attrs:  # none, or read already
            return frame
        with _as_file(frame) as path:
            read = read_table(path, na_values)
        read.index, read.attrs = frame.index, dict(frame.attrs)
        return read

    def _own_table(self) -> DatasetBundle:
        from mtlkit.data.table import load_table

        data = self.config.data
        path = Path(str(data.path))
        if not path.is_file():
            raise ConfigError(
                f"evaluate: the run's data file {str(path)!r} no longer exists; "
                "pass --data FILE to evaluate a labelled file with the run's preprocessing"
            )
        if self.data_sha256 != file_digest(path):
            raise ConfigError(
                f"evaluate: data file {str(path)!r} changed since the run was trained, so its "
                f"splits would hold other rows; pass --data {str(path)!r} to evaluate every row "
                "of it with the run's preprocessing"
            )
        return load_table(
            path, self._specs(), fitted=self.fitted(), **table_split_options(self.config)
        )

    # -- export -----------------------------------------------------------------------------

    def export(self, path: str | Path, format: str = "torchscript") -> Path:
        """Write the model for serving; see :func:`mtlkit.runs.export.export_run`."""
        from mtlkit.runs.export import export_run

        return export_run(self, path, format)


def _check_frame(data: Any, command: str) -> None:
    """A table ``predict`` or ``evaluate`` can read: a DataFrame with rows and unique columns."""
    import pandas as pd

    from mtlkit.data.table import DataError

    if not isinstance(data, pd.DataFrame):
        raise TypeError(
            f"{command}: expected a pandas DataFrame with the run's columns"
            + (" or a Tensor of model inputs" if command == "predict" else "")
            + f", got {type(data).__name__}"
        )
    if len(data) == 0:
        raise DataError(f"{command}: the table has no rows")
    duplicated = data.columns[data.columns.duplicated()]
    if len(duplicated):
        raise DataError(f"{command}: duplicate column {duplicated[0]!r}")


def load(run_dir: str | Path) -> TrainedRun:
    """The finished run in ``run_dir`` (``config.yaml``, ``tasks.json``, ``model.pt``).

    The dataset is not reloaded. A missing file or weights that do not fit the configured model
    are one-line errors naming the file.
    """
    run_dir = Path(run_dir)
    for name in RUN_FILES_NEEDED:
        if not (run_dir / name).is_file():
            raise ConfigError(
                f"run directory {str(run_dir)!r} has no {name}; is it a finished run?"
            )
    config = load_config(run_dir / "config.yaml")
    meta = read_json(run_dir / "tasks.json", "run directory")
    pre = meta.get("preprocessor")
    run = TrainedRun(
        path=run_dir,
        config=config,
        tasks=[Task.from_dict(t) for t in meta["tasks"]],
        model=None,  # type: ignore[arg-type]  # built below from the run's own shape
        dataset=meta["dataset"],
        input_shape=tuple(meta["input_shape"]),
        preprocessor=TabularPreprocessor.from_dict(pre) if pre else None,
        target_scaling={k: (float(v[0]), float(v[1])) for k, v in meta["target_scaling"].items()},
        target_columns=meta.get("target_columns", {}),
        data_sha256=meta.get("data_sha256"),
    )
    model = build_model(config, run.fitted())
    weights = load_file(run_dir / "model.pt", "run directory")
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise FileError(
            f"run directory: {str(run_dir / 'model.pt')!r} does not hold the weights of the "
            f"model in config.yaml ({str(err).strip().splitlines()[0]})"
        ) from None
    model.eval()
    run.model = model
    return run


@contextlib.contextmanager
def _as_file(frame: pd.DataFrame) -> Iterator[Path]:
    """A temporary CSV file of ``frame`` (read back as :func:`mtlkit.data.table.read_table`
    reads the user's files)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "frame.csv"
        frame.to_csv(path, index=False)
        yield path


def _check_finite(outputs: dict[str, Tensor], rows: int, frame: pd.DataFrame | None) -> None:
    """Refuse a prediction (or a class chosen from NaN probabilities) for a non-finite output."""
    from mtlkit.data.cells import location

    for name, out in outputs.items():
        bad = ~torch.isfinite(out.reshape(rows, -1)).all(dim=1)
        if bad.any():
            first = int(torch.nonzero(bad)[0])
            where = location(frame, frame.index[first]) if frame is not None else f"row {first}"
            raise ConfigError(
                f"predict: task {name!r}: the model gave non-finite outputs for "
                f"{int(bad.sum())} row(s), first {where}; nothing written"
            )


def _add_prediction_columns(
    table: pd.DataFrame,
    task: Task,
    out: Tensor,
    scaling: tuple[float, float] | None,
    all_probabilities: bool,
) -> None:
    """Add one task's columns (its kind's: value, or class and probability, or every one)."""
    for name, values in task.spec.columns(task, out, scaling, all_probabilities).items():
        table[name] = values
