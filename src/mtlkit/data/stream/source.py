"""A table on disk read one record batch ("unit") at a time: a Parquet or CSV file, a directory
or a glob of such files.

- **Files**: a file; every Parquet (``.parquet``/``.pq``) or CSV file under a directory
  (recursively; names starting with ``.`` or ``_`` are skipped, as pyarrow does); or the files a
  glob matches (``data/part-*.parquet``, ``**`` recursive). Sorted by path. Parquet and CSV
  files cannot be mixed; every file must have the same columns (any order) and, in Parquet, a
  column must hold numbers in every file or text in every file.
- **Units**: Parquet files are cut per row group into batches of at most ``chunk_rows`` rows;
  CSV files into runs of ``chunk_rows`` records. Units are numbered in file order, then row order
  within a file; unit ``i``'s rows are ``first_row .. first_row + rows - 1`` in the global row
  numbering over all files.
- **Cells**: each unit is a data frame read like :func:`mtlkit.data.table.read_table` reads a
  whole file (header names checked and stripped, field counts checked, missing cells marked by
  the same rules), with its file in ``attrs["source"]`` and its rows numbered within the file, so
  every later error names the file and the row or line.

Memory: :meth:`StreamSource.scan` holds one record batch; :meth:`StreamSource.read` (random
access) holds one Parquet row group of the columns asked for (pyarrow writes row groups of at
most 1,048,576 rows by default) or one CSV unit.
"""

from __future__ import annotations

import csv
import glob
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mtlkit.data.cells import DataError
from mtlkit.data.table import PARQUET_SUFFIXES, _check_header, _mark_missing, _require_column

CSV_SUFFIXES = (".csv",)
DEFAULT_CHUNK_ROWS = 65_536
"""Default ``data.stream_chunk_rows``: the most rows in one unit."""


@dataclass(frozen=True)
class Unit:
    """One record batch of a stream: ``rows`` rows of file number ``file`` starting at its row
    ``file_row`` (global row ``first_row``). Parquet: in row group ``row_group`` from its row
    ``group_row``; CSV: the records in bytes ``byte_start .. byte_stop`` of the file."""

    file: int
    file_row: int
    first_row: int
    rows: int
    row_group: int = -1
    group_row: int = 0
    byte_start: int = 0
    byte_stop: int = 0


def resolve_files(path: str | Path) -> list[Path]:
    """The data files ``path`` names (a file, a directory or a glob), sorted; an error names the
    path when there are none, or when Parquet and CSV files are mixed."""
    text = str(path)
    target = Path(text)
    if target.is_file():
        files = [target]
    elif target.is_dir():
        files = [
            p
            for p in target.rglob("*")
            if p.is_file()
            and p.suffix.lower() in PARQUET_SUFFIXES + CSV_SUFFIXES
            and not any(part.startswith((".", "_")) for part in p.relative_to(target).parts)
        ]
        if not files:
            raise DataError(
                f"data.path {text!r}: the directory holds no Parquet (.parquet, .pq) or CSV "
                "(.csv) files"
            )
    elif glob.has_magic(text):
        files = [Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()]
        if not files:
            raise DataError(f"data.path {text!r}: the pattern matches no file")
    else:
        raise DataError(f"data file {text!r} does not exist")
    files = sorted(files)
    parquet = [p for p in files if p.suffix.lower() in PARQUET_SUFFIXES]
    if parquet and len(parquet) != len(files):
        other = next(p for p in files if p.suffix.lower() not in PARQUET_SUFFIXES)
        raise DataError(
            f"data.path {text!r}: mixes Parquet ({str(parquet[0])!r}) and other files "
            f"({str(other)!r}); give files of one format"
        )
    return files


class StreamSource:
    """The files of ``path`` with their checked columns; units read one at a time (see the
    module docstring). ``columns`` are the stripped column names, the same in every file."""

    def __init__(
        self,
        path: str | Path,
        na_values: Sequence[str] = (),
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise DataError(f"data.stream_chunk_rows: expected an integer >= 1, got {chunk_rows!r}")
        self.path = str(path)
        self.na_values = list(na_values)
        self.chunk_rows = chunk_rows
        self.files = resolve_files(path)
        self.parquet = self.files[0].suffix.lower() in PARQUET_SUFFIXES
        for file in self.files:
            if file.stat().st_size == 0:
                raise DataError(f"data file {str(file)!r} is empty")
        headers = [self._header(file) for file in self.files]
        self._raw_names = [dict(zip(names, raw)) for names, raw, _ in headers]
        self._kinds = [kinds for _, _, kinds in headers]
        self.columns = headers[0][0]
        self._check_same_columns()
        self._csv_header = [b""] * len(self.files)
        self._cache: tuple[tuple[int, int, tuple[str, ...]], object] | None = None

    def __getstate__(self) -> dict:
        """Pickled (for DataLoader workers) without the cached row group."""
        return {**self.__dict__, "_cache": None}

    # ------------------------------------------------------------------------------ schema
    def _header(self, file: Path) -> tuple[list[str], list[str], dict[str, str]]:
        """Stripped names, raw names and (Parquet) coarse column kinds of one file."""
        if not self.parquet:
            with open(file, newline="", encoding="utf-8-sig") as handle:
                try:
                    raw = next(csv.reader(handle), [])
                except UnicodeDecodeError:
                    raise DataError(
                        f"data file {str(file)!r} cannot be read: it is not UTF-8 text"
                    ) from None
                except csv.Error as err:
                    raise DataError(f"data file {str(file)!r} cannot be read: {err}") from None
            return _check_header(raw, file), list(raw), {}
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(file)
        except Exception as err:  # pyarrow raises its own error types for corrupt files
            raise DataError(f"data file {str(file)!r} cannot be read: {_first_line(err)}") from None
        fields = [f for f in schema if not f.name.startswith("__index_level_")]
        names = _check_header([f.name for f in fields], file)
        for field, name in zip(fields, names):
            if pa.types.is_nested(field.type):
                raise DataError(
                    f"data file {str(file)!r}: column {name!r} is nested ({field.type}); "
                    "flatten it into scalar columns"
                )
        kinds = {name: _coarse_kind(field.type) for field, name in zip(fields, names)}
        return names, [f.name for f in fields], kinds

    def _check_same_columns(self) -> None:
        first, expected = self.files[0], set(self.columns)
        for index, file in enumerate(self.files[1:], start=1):
            names = set(self._raw_names[index])
            if names != expected:
                missing, extra = sorted(expected - names), sorted(names - expected)
                parts = [f"lacks {missing}" if missing else "", f"adds {extra}" if extra else ""]
                raise DataError(
                    f"data file {str(file)!r}: its columns differ from {str(first)!r}'s: "
                    f"{'; '.join(p for p in parts if p)}; every file of a stream needs the "
                    "same columns"
                )
            for column, kind in self._kinds[index].items():
                known = self._kinds[0][column]
                if "null" not in (kind, known) and kind != known:
                    raise DataError(
                        f"data file {str(file)!r}: column {column!r} holds {kind} values, "
                        f"{str(first)!r} holds {known} values; every file of a stream needs "
                        "the same column types"
                    )

    def require(self, columns: Sequence[str], where: str = "data") -> None:
        """An error naming the first of ``columns`` that the files lack, and ``where`` it is
        needed (``"data.features"``, ``"task 'price'"``), as :func:`~mtlkit.data.table.load_table`
        words it."""
        frame = pd.DataFrame(columns=self.columns)
        for column in columns:
            _require_column(frame, column, where, Path(self.path))

    # ------------------------------------------------------------------------------ reading
    def scan(self, columns: Sequence[str] | None = None) -> Iterator[tuple[Unit, pd.DataFrame]]:
        """Every unit with its rows (``columns`` only), in order; one record batch in memory."""
        columns = list(self.columns if columns is None else columns)
        first_row = 0
        for index in range(len(self.files)):
            chunks = self._scan_parquet(index, columns) if self.parquet else self._scan_csv(index)
            file_row = 0
            for unit_fields, frame in chunks:
                unit = Unit(file=index, file_row=file_row, first_row=first_row, **unit_fields)
                yield unit, self._finish(frame, unit, columns)
                file_row += unit.rows
                first_row += unit.rows

    def read(self, unit: Unit, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The rows of one unit (``columns`` only), read without reading the units before it."""
        columns = list(self.columns if columns is None else columns)
        if self.parquet:
            group = self._row_group(unit.file, unit.row_group, columns)
            frame = group.slice(unit.group_row, unit.rows).to_pandas(ignore_metadata=True)
        else:
            with open(self.files[unit.file], "rb") as handle:
                handle.seek(unit.byte_start)
                body = handle.read(unit.byte_stop - unit.byte_start)
            frame = self._parse_csv(unit.file, body)
        if len(frame) != unit.rows:
            raise DataError(
                f"data file {str(self.files[unit.file])!r} changed while it was read: "
                f"expected {unit.rows} rows at row {unit.file_row + 1}, found {len(frame)}"
            )
        return self._finish(frame, unit, columns)

    def _finish(self, frame: pd.DataFrame, unit: Unit, columns: list[str]) -> pd.DataFrame:
        """Stripped names, missing cells marked, rows numbered within the file, the file named."""
        if self.parquet:
            stripped = {raw: name for name, raw in self._raw_names[unit.file].items()}
            frame.columns = [stripped[c] for c in frame.columns]
        frame = _mark_missing(frame[columns].copy(), self.na_values)
        frame.index = pd.RangeIndex(unit.file_row, unit.file_row + len(frame))
        frame.attrs["source"] = str(self.files[unit.file])
        return frame

    def _raw(self, index: int, columns: list[str]) -> list[str]:
        return [self._raw_names[index][c] for c in columns]

    def _scan_parquet(self, index: int, columns: list[str]):
        import pyarrow.parquet as pq

        file = self.files[index]
        try:
            reader = pq.ParquetFile(file)
            for group in range(reader.metadata.num_row_groups):
                batches = reader.iter_batches(
                    batch_size=self.chunk_rows,
                    row_groups=[group],
                    columns=self._raw(index, columns),
                )
                group_row = 0
                for batch in batches:
                    fields = {"rows": batch.num_rows, "row_group": group, "group_row": group_row}
                    yield fields, batch.to_pandas(ignore_metadata=True)
                    group_row += batch.num_rows
        except DataError:
            raise
        except Exception as err:  # pyarrow raises its own error types for corrupt files
            raise DataError(f"data file {str(file)!r} cannot be read: {_first_line(err)}") from None

    def _row_group(self, index: int, group: int, columns: list[str]):
        """One row group's ``columns`` as a pyarrow table; the last one read is kept."""
        import pyarrow.parquet as pq

        key = (index, group, tuple(columns))
        if self._cache is None or self._cache[0] != key:
            self._cache = None  # free the previous row group before reading the next
            file = self.files[index]
            try:
                table = pq.ParquetFile(file).read_row_group(group, self._raw(index, columns))
            except Exception as err:
                raise DataError(
                    f"data file {str(file)!r} cannot be read: {_first_line(err)}"
                ) from None
            self._cache = (key, table)
        return self._cache[1]

    def _scan_csv(self, index: int):
        """Units of ``chunk_rows`` records: byte ranges found by :mod:`csv` (field counts
        checked, as :func:`mtlkit.data.table.read_table` does), each parsed by pandas."""
        file = self.files[index]
        names = self.columns
        consumed = 0

        def lines(handle):
            nonlocal consumed
            for raw in handle:
                consumed += len(raw)
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise DataError(
                        f"data file {str(file)!r} cannot be read: it is not UTF-8 text"
                    ) from None

        with open(file, "rb") as handle:
            reader = csv.reader(lines(handle))
            try:
                next(reader, None)
                self._csv_header[index] = _read_bytes(file, 0, consumed)
                start, rows = consumed, 0
                for record in reader:
                    if not record:
                        continue  # a blank line is no row (pandas skips it too)
                    if len(record) != len(names):
                        raise DataError(
                            f"data file {str(file)!r}, line {reader.line_num}: {len(record)} "
                            f"fields, the header has {len(names)}"
                        )
                    rows += 1
                    if rows == self.chunk_rows:
                        yield self._csv_unit(index, start, consumed, rows)
                        start, rows = consumed, 0
            except csv.Error as err:
                raise DataError(f"data file {str(file)!r} cannot be read: {err}") from None
            if rows:
                yield self._csv_unit(index, start, consumed, rows)

    def _csv_unit(self, index: int, start: int, stop: int, rows: int):
        fields = {"rows": rows, "byte_start": start, "byte_stop": stop}
        return fields, self._parse_csv(index, _read_bytes(self.files[index], start, stop))

    def _parse_csv(self, index: int, body: bytes) -> pd.DataFrame:
        if not self._csv_header[index]:
            with open(self.files[index], "rb") as handle:
                self._csv_header[index] = handle.readline()
        try:
            frame = pd.read_csv(
                io.BytesIO(self._csv_header[index] + body),
                keep_default_na=False,
                na_values=["", *self.na_values],
                encoding="utf-8-sig",
                low_memory=False,
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise DataError(
                f"data file {str(self.files[index])!r} cannot be read: {_first_line(err)}"
            ) from None
        frame.columns = list(self._raw_names[index])  # this file's order (files may differ)
        return frame


def _read_bytes(file: Path, start: int, stop: int) -> bytes:
    with open(file, "rb") as handle:
        handle.seek(start)
        return handle.read(stop - start)


def _coarse_kind(arrow_type) -> str:
    """``number``, ``text``, ``bool``, ``null`` or the type's name: what a column holds."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "number"
    if pa.types.is_decimal(arrow_type):
        return "number"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_null(arrow_type):
        return "null"
    return str(arrow_type)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
