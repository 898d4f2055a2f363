from __future__ import annotations

import csv
import gzip
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.data import formats
from shared.data.errors import DatasetFileError
from shared.data.formats import detect_file_format, detect_format, iter_records, read_columns


def _jsonl_rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _sample_rows(datasets_dir: Path, count: int) -> list[dict[str, object]]:
    # banking77 is sorted by label: shuffle before taking a sample.
    rows = _jsonl_rows(datasets_dir / "banking77" / "train.jsonl")
    random.Random(7).shuffle(rows)
    return rows[:count]


def test_reads_sms_spam_jsonl_row_by_row(datasets_dir: Path) -> None:
    path = datasets_dir / "sms_spam" / "train.jsonl"
    expected = _jsonl_rows(path)

    records = list(iter_records(path, "jsonl"))

    assert [record.fields for record in records] == expected
    assert [record.row for record in records] == list(range(1, len(expected) + 1))
    assert all(record.problem is None for record in records)


def test_reads_banking77_jsonl_with_all_its_classes(datasets_dir: Path) -> None:
    path = datasets_dir / "banking77" / "test.jsonl"

    labels = {record.fields["label"] for record in iter_records(path, "jsonl") if record.fields}

    assert len(labels) == 77
    assert read_columns(path, "jsonl") is None


def test_csv_round_trip_keeps_every_field_and_counts_physical_lines(
    datasets_dir: Path, tmp_path: Path
) -> None:
    rows = _sample_rows(datasets_dir, 150)
    # Commas, quotes, a newline inside a field and non-ASCII text must all survive the csv module.
    rows[3] = {"text": 'He said "refund", then left,\nangry — très fâché', "label": "refund_not_showing_up"}
    path = tmp_path / "rows.csv"
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)

    records = list(iter_records(path, "csv"))

    assert [record.fields for record in records] == rows
    assert read_columns(path, "csv") == ["text", "label"]
    # Line 1 is the header; row 4 spans two physical lines, so row 5 starts on line 7.
    assert (records[3].row, records[3].line) == (4, 5)
    assert (records[4].row, records[4].line) == (5, 7)
    assert records[4].where == "row 5 (line 7)"


def test_parquet_round_trip_across_record_batches(datasets_dir: Path, tmp_path: Path) -> None:
    rows = _sample_rows(datasets_dir, formats.PARQUET_BATCH_ROWS + 300)
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=1000)

    records = list(iter_records(path, "parquet"))

    assert [record.fields for record in records] == rows
    assert records[-1].row == len(rows)
    assert records[0].line is None
    assert read_columns(path, "parquet") == ["text", "label"]


def test_parquet_reads_only_the_requested_columns(tmp_path: Path) -> None:
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "label": ["x", "y"], "embedding": [[0.1], [0.2]]}), path)

    records = list(iter_records(path, "parquet", columns=["text", "label"]))

    assert [record.fields for record in records] == [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]


def test_jsonl_skips_blank_lines_and_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "a", "label": "x"}\n\n   \n{"text": "b", "label": "y"}\n')

    records = list(iter_records(path, "jsonl"))

    assert [record.fields for record in records] == [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]
    assert [(record.row, record.line) for record in records] == [(1, 1), (2, 4)]


def test_a_line_longer_than_the_cap_is_refused_not_loaded(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(formats, "MAX_LINE_BYTES", 1024)
    path = tmp_path / "one_line.jsonl"
    path.write_text('{"text": "ok", "label": "x"}\n{"text": "' + "a" * 5000 + '"}\n', encoding="utf-8")

    with pytest.raises(DatasetFileError, match="line 2 is longer than"):
        list(iter_records(path, "jsonl"))


@pytest.mark.parametrize(
    ("filename", "head", "expected"),
    [
        ("train.jsonl", b'{"text": "a"}\n', "jsonl"),
        ("train.NDJSON", b'{"text": "a"}\n', "jsonl"),
        ("train.json", b'{"text": "a"}\n', "jsonl"),
        ("train.csv", b"text,label\na,b\n", "csv"),
        ("train.parquet", b"PAR1\x15\x04", "parquet"),
        # The content wins over a misleading name when it is unmistakably Parquet.
        ("upload.bin", b"PAR1\x15\x04", "parquet"),
        ("utf8.csv", "text,label\nçà,b\n".encode(), "csv"),
    ],
)
def test_detect_format(filename: str, head: bytes, expected: str) -> None:
    assert detect_format(filename, head) == expected


@pytest.mark.parametrize(
    ("filename", "head", "reason"),
    [
        ("train.jsonl", b"", "the file is empty"),
        ("train.jsonl", b'{"text": 1}\x00\x00\x01\x02', "binary"),
        ("train.jsonl", gzip.compress(b'{"text": "a"}'), "gzip"),
        ("train.xlsx", b"PK\x03\x04rest", "zip archive"),
        ("train.csv", "text,label\nok,a\ncaf\xe9,b\n".encode("latin-1"), "line 3 (byte offset 19)"),
        ("train.csv", "text,label\n".encode("utf-16"), "UTF-16"),
        ("train.txt", b"hello\n", "unknown file extension '.txt'"),
        ("train", b"hello\n", "unknown file extension '(none)'"),
        ("train.parquet", b"text,label\n", "does not start with the Parquet magic bytes"),
        ("train.json", b'[{"text": "a"}]', "JSON array"),
    ],
)
def test_detect_format_refuses_unusable_files(filename: str, head: bytes, reason: str) -> None:
    with pytest.raises(DatasetFileError) as raised:
        detect_format(filename, head)

    assert reason in raised.value.reason


def test_detect_file_format_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("text,label\n" + "a,b\n" * 50_000, encoding="utf-8")

    assert detect_file_format(path) == "csv"


def test_csv_header_with_a_repeated_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "twice.csv"
    path.write_text("text,label,text\na,b,c\n", encoding="utf-8")

    with pytest.raises(DatasetFileError, match="names 'text' more than once"):
        read_columns(path, "csv")
    with pytest.raises(DatasetFileError, match="names 'text' more than once"):
        list(iter_records(path, "csv"))
