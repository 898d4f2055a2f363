"""Recognise an uploaded file's format and stream its rows without loading the file.

Uploads can be hundreds of megabytes, so every reader yields one record at a time: JSONL line by
line, CSV through the csv module over decoded lines, Parquet by record batches. A row that cannot
be read is still yielded, with the reason instead of its fields, so that validation can report
every bad row rather than stop at the first.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import pyarrow as pa
import pyarrow.parquet as pq

from shared.data.errors import DatasetFileError

DatasetFormat = Literal["jsonl", "csv", "parquet"]
DATASET_FORMATS: tuple[str, ...] = get_args(DatasetFormat)

# How much of the file's start `detect_file_format` reads; enough to see a header and a few rows.
SNIFF_BYTES = 64 * 1024
# One physical line longer than this is refused instead of read, so a file without newlines cannot
# pull hundreds of megabytes into memory. Valid rows are far shorter (texts are capped at 20,000
# characters by the validation limits).
MAX_LINE_BYTES = 16 * 1024 * 1024
PARQUET_BATCH_ROWS = 4096

PARQUET_MAGIC = b"PAR1"
UTF8_BOM = codecs.BOM_UTF8
_EXTENSIONS: dict[str, DatasetFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# Magic numbers of files people upload by mistake, named so the message says what the file is.
_KNOWN_BINARIES: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "a gzip archive; upload the uncompressed file"),
    (b"PK\x03\x04", "a zip archive (or an Excel workbook); export the data as CSV, JSONL or Parquet"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Office file; export the data as CSV"),
    (b"SQLite format 3\x00", "an SQLite database; export the table as CSV, JSONL or Parquet"),
)


@dataclass(frozen=True, slots=True)
class Record:
    """One data row as read from the file, before any checks on its content.

    `row` is the 1-based data-row number (blank lines and the CSV header do not count); `line` is
    the 1-based physical line where the row starts (None for Parquet). Exactly one of `fields` and
    `problem` is set.
    """

    row: int
    line: int | None
    fields: dict[str, object] | None
    problem: str | None = None

    @property
    def where(self) -> str:
        """'row 17', or 'row 17 (line 19)' when an editor would show a different line number."""
        if self.line is None or self.line == self.row:
            return f"row {self.row}"
        return f"row {self.row} (line {self.line})"


def detect_format(filename: str, head: bytes) -> DatasetFormat:
    """Tell the format from the file name and its first bytes; raise DatasetFileError if unusable."""
    if not head:
        raise DatasetFileError("the file is empty")
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    for magic, what in _KNOWN_BINARIES:
        if head.startswith(magic):
            raise DatasetFileError(f"the file is {what}")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DatasetFileError("the file is UTF-16 text; save it as UTF-8")
    suffix = Path(filename).suffix.lower()
    if _EXTENSIONS.get(suffix) == "parquet":
        raise DatasetFileError(
            f"'{filename}' is named as Parquet but does not start with the Parquet magic bytes PAR1"
        )
    if b"\x00" in head:
        raise DatasetFileError("the file is binary (it contains NUL bytes) and is not Parquet")
    _check_utf8(head)
    if suffix not in _EXTENSIONS:
        supported = ", ".join(sorted(_EXTENSIONS))
        raise DatasetFileError(f"unknown file extension '{suffix or '(none)'}'; use one of {supported}")
    if suffix == ".json" and head.removeprefix(UTF8_BOM).lstrip().startswith(b"["):
        raise DatasetFileError(
            "the file is a JSON array; upload JSON Lines instead (one JSON object per line)"
        )
    return _EXTENSIONS[suffix]


def detect_file_format(path: Path) -> DatasetFormat:
    with path.open("rb") as file:
        return detect_format(path.name, file.read(SNIFF_BYTES))


def _check_utf8(head: bytes) -> None:
    # Incremental decoding with final=False: the sniffed head may end inside a multi-byte character.
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as error:
        line = head.count(b"\n", 0, error.start) + 1
        raise DatasetFileError(
            f"the file is not UTF-8 text: line {line} (byte offset {error.start}) has an invalid byte; "
            "save the file as UTF-8",
            row=line,
        ) from error


def read_columns(path: Path, fmt: DatasetFormat) -> list[str] | None:
    """The column names the file declares: the CSV header or the Parquet schema; None for JSONL."""
    if fmt == "csv":
        with path.open("rb") as file:
            first_line = next(_decoded_lines(file, bad_lines=[]), None)
        if first_line is None:
            raise DatasetFileError("the file is empty")
        try:
            header = next(csv.reader([first_line]), [])
        except csv.Error as error:
            raise DatasetFileError(f"the CSV header row cannot be read: {error}", row=None) from error
        return _header_names(header)
    if fmt == "parquet":
        return list(_open_parquet(path).schema_arrow.names)
    return None


def iter_records(path: Path, fmt: DatasetFormat, columns: list[str] | None = None) -> Iterator[Record]:
    """Yield the file's data rows one at a time. `columns` limits Parquet reads to those columns."""
    if fmt == "jsonl":
        yield from _iter_jsonl(path)
    elif fmt == "csv":
        yield from _iter_csv(path)
    elif fmt == "parquet":
        yield from _iter_parquet(path, columns)
    else:
        raise ValueError(f"unknown dataset format {fmt!r}; expected one of {DATASET_FORMATS}")


def _read_line(file, line_number: int) -> bytes:
    raw = file.readline(MAX_LINE_BYTES + 1)
    if len(raw) > MAX_LINE_BYTES:
        raise DatasetFileError(
            f"line {line_number} is longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB; "
            "is this really a line-oriented JSONL/CSV file?",
            row=line_number,
        )
    return raw


def _iter_jsonl(path: Path) -> Iterator[Record]:
    row = 0
    offset = 0
    with path.open("rb") as file:
        line_number = 0
        while raw := _read_line(file, line_number + 1):
            line_number += 1
            line_offset = offset
            offset += len(raw)
            if line_number == 1:
                raw = raw.removeprefix(UTF8_BOM)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                row += 1
                yield Record(
                    row,
                    line_number,
                    None,
                    f"is not valid UTF-8 (invalid byte at file offset {line_offset + error.start}); "
                    "save the file as UTF-8",
                )
                continue
            if not text.strip():
                continue
            row += 1
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                yield Record(
                    row, line_number, None, f"is not valid JSON: {error.msg} at column {error.colno}"
                )
                continue
            if not isinstance(value, dict):
                yield Record(
                    row,
                    line_number,
                    None,
                    f"is {json_type_name(value)}, not a JSON object; write one object per line, "
                    'like {"text": "...", "label": "..."}',
                )
                continue
            yield Record(row, line_number, value)


def _decoded_lines(file, bad_lines: list[tuple[int, int]]) -> Iterator[str]:
    """Decode a binary file line by line for the csv module.

    A line that is not UTF-8 is decoded with replacement characters so parsing can go on, and its
    (line number, byte offset) is appended to `bad_lines` so the row that holds it is reported.
    """
    line_number = 0
    offset = 0
    while raw := _read_line(file, line_number + 1):
        line_number += 1
        if line_number == 1:
            raw = raw.removeprefix(UTF8_BOM)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as error:
            bad_lines.append((line_number, offset + error.start))
            yield raw.decode("utf-8", errors="replace")
        offset += len(raw)


def _iter_csv(path: Path) -> Iterator[Record]:
    bad_lines: list[tuple[int, int]] = []
    with path.open("rb") as file:
        reader = csv.reader(_decoded_lines(file, bad_lines))
        try:
            header = next(reader, None)
            if header is None:
                return
            if bad_lines:
                raise DatasetFileError(
                    "the CSV header row is not valid UTF-8; save the file as UTF-8", row=None
                )
            names = _header_names(header)
            row = 0
            lines_read = reader.line_num
            for values in reader:
                first_line = lines_read + 1
                lines_read = reader.line_num
                # A bad byte anywhere in the lines this record spans belongs to this record.
                undecodable = [offset for line, offset in bad_lines if line <= lines_read]
                bad_lines.clear()
                if not values:
                    continue
                row += 1
                if undecodable:
                    yield Record(
                        row,
                        first_line,
                        None,
                        f"is not valid UTF-8 (invalid byte at file offset {undecodable[0]}); "
                        "save the file as UTF-8",
                    )
                elif len(values) != len(names):
                    yield Record(
                        row,
                        first_line,
                        None,
                        f"has {len(values)} fields but the header has {len(names)}; "
                        "quote fields that contain commas",
                    )
                else:
                    yield Record(row, first_line, dict(zip(names, values, strict=True)))
        except csv.Error as error:
            # The csv module cannot resume after a malformed record (NUL byte, unclosed quote
            # running into the field size limit), so this ends the file.
            raise DatasetFileError(
                f"CSV line {reader.line_num} cannot be parsed: {error}", row=reader.line_num
            ) from error


def _header_names(header: list[str]) -> list[str]:
    names = [name.strip() for name in header]
    # Rows become dicts keyed by column name; a repeated name would silently drop a column.
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        listed = ", ".join(f"'{name}'" for name in repeated)
        raise DatasetFileError(f"the CSV header names {listed} more than once; rename the columns")
    return names


def _open_parquet(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise DatasetFileError(f"the Parquet file cannot be read: {error}") from error


def _iter_parquet(path: Path, columns: list[str] | None) -> Iterator[Record]:
    parquet_file = _open_parquet(path)
    row = 0
    try:
        for batch in parquet_file.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            for fields in batch.to_pylist():
                row += 1
                yield Record(row, None, fields)
    except (pa.ArrowException, OSError) as error:
        raise DatasetFileError(
            f"the Parquet file is corrupt after row {row}: {error}", row=row + 1
        ) from error


def json_type_name(value: object) -> str:
    """How a value's type reads to someone who wrote the file (JSON terms, with an article)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"
