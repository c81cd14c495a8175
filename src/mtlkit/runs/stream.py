"""A run on a table larger than memory (``data.stream: true``, ``mtlkit train --stream``).

:func:`load_stream` fits a :class:`~mtlkit.data.stream.StreamTable` in one pass (preprocessing,
task classes, target scaling, rows of each split in each unit) and wraps it in a
:class:`StreamBundle`, which stands where a :class:`~mtlkit.data.DatasetBundle` does: the
model, the trainer and the run directory are built from it as from an in-memory table (the
same preprocessor is stored in ``tasks.json``). Training batches come from a shuffled
:class:`~mtlkit.data.stream.StreamLoader` (:func:`stream_train_loader`); validation and test
are scored through unshuffled ones, a unit at a time. Mid-epoch checkpoints default to every
:data:`STREAM_CHECKPOINT_EVERY_STEPS` optimizer steps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mtlkit.config import Config, ConfigError
from mtlkit.data import TabularPreprocessor
from mtlkit.data.stream import StreamLoader, StreamTable, resolve_files, scan_table
from mtlkit.data.table import TableTask
from mtlkit.distributed.env import DistContext
from mtlkit.runs.build import apply_task_overrides, table_encoder_options
from mtlkit.tasks import Task
from mtlkit.tasks.class_weights import (
    BALANCED,
    balanced_class_weight_from_counts,
    balanced_pos_weight_from_counts,
)
from mtlkit.tasks.task import NamedTasks

STREAM_CHECKPOINT_EVERY_STEPS = 1000
"""``training.checkpoint_every_steps`` of a streamed run that does not set it."""


def checkpoint_every_steps(config: Config) -> int | None:
    """Optimizer steps between mid-epoch checkpoints: ``training.checkpoint_every_steps``, for
    a stream by default :data:`STREAM_CHECKPOINT_EVERY_STEPS` (``None``: after epochs only)."""
    every = config.training.checkpoint_every_steps
    if every is None and config.data.stream:
        return STREAM_CHECKPOINT_EVERY_STEPS
    return every


@dataclass
class StreamBundle(NamedTasks):
    """A fitted stream where a :class:`~mtlkit.data.DatasetBundle` is expected.

    ``val`` and ``test`` are unshuffled loaders of those splits (every process scores a whole
    split); the training loader is :func:`stream_train_loader`'s.
    """

    table: StreamTable
    tasks: list[Task]
    val: StreamLoader
    test: StreamLoader

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def description(self) -> str:
        return self.table.description

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.table.input_shape

    @property
    def default_encoder(self) -> str:
        return self.table.default_encoder

    @property
    def target_columns(self) -> dict[str, str]:
        return self.table.target_columns

    @property
    def preprocessor(self) -> TabularPreprocessor:
        return self.table.preprocessor

    @property
    def target_scaling(self) -> dict[str, tuple[float, float]]:
        return self.table.target_scaling

    def select_tasks(self, names: Sequence[str]) -> StreamBundle:
        """The same stream with only ``names``' heads (``model.init_from`` builds the old
        run's model from it)."""
        return replace(self, tasks=[self.task(n) for n in names])


def load_stream(config: Config) -> StreamBundle:
    """Fit the configured stream (``data.path``: a file, a directory or a glob) in one pass;
    the ``tasks:`` overrides applied."""
    data = config.data
    if data.path is None:
        raise ConfigError("data.stream: needs data.path (a Parquet/CSV file, directory or glob)")
    specs = [TableTask(t.name, t.kind, (t.column or t.name).split("+")) for t in data.tasks]
    if config.select_tasks is not None:
        unknown = [n for n in config.select_tasks if n not in [s.name for s in specs]]
        if unknown:
            raise ConfigError(f"select_tasks: unknown task(s) {', '.join(unknown)}")
        specs = [s for s in specs if s.name in config.select_tasks]
    table = scan_table(  # its errors (DataError) name the file, row and column
        data.path,
        specs,
        features=data.features,
        categorical=data.categorical,
        id_column=data.id_column,
        split=data.split,
        val_size=data.val_size,
        test_size=data.test_size,
        split_column=data.split_column,
        seed=config.seed,
        na_values=data.na_values,
        chunk_rows=data.stream_chunk_rows,
        encoder_options=table_encoder_options(config),
    )
    tasks = [_fit_balanced_weights(t, table) for t in apply_task_overrides(table.tasks, config)]
    return StreamBundle(table, tasks, _eval_loader(table, "val"), _eval_loader(table, "test"))


def _fit_balanced_weights(task: Task, table: StreamTable) -> Task:
    """``"balanced"`` class or ``pos_weight`` from the training rows' class counts, which the
    scan keeps (a multilabel task's are not counted: refused)."""
    if BALANCED not in (task.class_weight, task.pos_weight):
        return task
    option = "class_weight" if task.class_weight == BALANCED else "pos_weight"
    counts = table.label_counts.get(task.name)
    if counts is None or (option == "pos_weight" and len(counts) != 2):
        raise ConfigError(
            f"tasks.{task.name}.{option}: 'balanced' is not available for a streamed "
            f"{task.kind} task (its labels are not counted); give the weights"
        )
    try:
        if option == "class_weight":
            weights = balanced_class_weight_from_counts(counts, task.class_names, task.name)
            return replace(task, class_weight=weights)
        weights = balanced_pos_weight_from_counts(counts[:1], counts[1:], task.name)
        return replace(task, pos_weight=weights)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _eval_loader(table: StreamTable, split: str, batch_size: int = 4096) -> StreamLoader:
    return StreamLoader(table, split, batch_size, shuffle=False)


def stream_train_loader(config: Config, bundle: StreamBundle, ctx: DistContext | None):
    """The training split's shuffled batches, this process's shard of each global batch."""
    return StreamLoader(
        bundle.table,
        "train",
        config.data.batch_size,
        shuffle=True,
        seed=config.seed,
        shuffle_buffer=config.data.shuffle_buffer,
        rank=ctx.rank if ctx else 0,
        world_size=ctx.world_size if ctx else 1,
        num_workers=config.data.num_workers,
    )


def stream_label_report(bundle: StreamBundle) -> list[str]:
    """Per task: rows in each split, and the training class counts or target scaling."""
    table = bundle.table
    rows = ", ".join(f"{s} {table.num_rows(s):,}" for s in ("train", "val", "test"))
    lines = [f"  {len(table.units)} unit(s) of at most {table.source.chunk_rows:,} rows: {rows}"]
    for task in bundle.tasks:
        counts = table.label_counts.get(task.name)
        if counts is not None:
            names = task.class_names or [str(i) for i in range(len(counts))]
            detail = ", ".join(f"{n} {int(c):,}" for n, c in zip(names, counts))
            detail = f"labelled training rows {int(counts.sum()):,}: {detail}"
        elif task.name in table.target_scaling:
            mean, std = table.target_scaling[task.name]
            detail = f"training target mean {mean:.4g}, std {std:.4g}"
        else:
            detail = ""
        lines.append(f"  {task.name} ({task.kind}): {detail}")
    return lines


def stream_digest(path: str | Path) -> str:
    """SHA-256 over the stream's files in order (each file's relative name and content): a
    resumed or re-evaluated stream must hold the same rows."""
    files = resolve_files(path)
    base = Path(path) if Path(path).is_dir() else None
    digest = hashlib.sha256()
    for file in files:
        name = str(file.relative_to(base)) if base is not None else file.name
        digest.update(name.encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()
