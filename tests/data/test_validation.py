from __future__ import annotations

import csv
import json
import random
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.data.errors import DatasetFileError
from shared.data.formats import DatasetFormat
from shared.data.validation import (
    ValidationLimits,
    ValidationResult,
    iter_classification_rows,
    validate_classification,
)
from shared.jobs.spec import ColumnMapping

GOOD_ROWS = [
    {"text": "I was charged twice this month", "label": "billing"},
    {"text": "Where is my parcel?", "label": "shipping"},
    {"text": "Refund my last invoice please", "label": "billing"},
    {"text": "The courier never came", "label": "shipping"},
]


def _write_jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines),
        encoding="utf-8",
    )
    return path


def _validate(path: Path, fmt: DatasetFormat = "jsonl", **limits: int) -> ValidationResult:
    return validate_classification(path, fmt, ColumnMapping(), ValidationLimits(**limits))


def _only_error(result: ValidationResult) -> tuple[int | None, str | None, str]:
    assert result.error_count == 1, result.errors
    error = result.errors[0]
    return error.row, error.field, error.reason


def test_a_clean_file_passes_with_its_labels(tmp_path: Path) -> None:
    result = _validate(_write_jsonl(tmp_path / "ok.jsonl", GOOD_ROWS))

    assert result.ok
    assert result.labels == ["billing", "shipping"]
    assert result.row_count == 4
    assert result.file_error is None
    assert result.as_dict()["report"]["valid_row_count"] == 4


def test_real_sms_spam_passes(datasets_dir: Path) -> None:
    result = _validate(datasets_dir / "sms_spam" / "train.jsonl")

    assert result.ok
    assert result.labels == ["ham", "spam"]
    assert result.row_count == 4460


def test_bad_json_line(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", [GOOD_ROWS[0], '{"text": "unterminated', *GOOD_ROWS[1:]])

    result = _validate(path)

    row, _, reason = _only_error(result)
    assert not result.ok
    assert row == 2
    assert reason.startswith("row 2 is not valid JSON")
    # The other rows are still checked and counted.
    assert result.report["valid_row_count"] == 4


def test_json_line_that_is_an_array(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "array.jsonl", [*GOOD_ROWS, ["text", "label"]])

    row, _, reason = _only_error(_validate(path))

    assert row == 5
    assert "is an array, not a JSON object" in reason


def test_missing_column_in_a_csv_names_it_and_lists_the_columns_found(tmp_path: Path) -> None:
    path = tmp_path / "no_label.csv"
    path.write_text("text,category\nhello,a\nbye,b\n", encoding="utf-8")

    result = _validate(path, "csv")

    assert not result.ok
    assert result.file_error is not None
    assert result.file_error.field == "label"
    assert "column 'label' not found" in result.file_error.reason
    assert "'text', 'category'" in result.file_error.reason


def test_missing_column_in_every_jsonl_row_is_one_file_error(tmp_path: Path) -> None:
    rows = [{"body": row["text"], "label": row["label"]} for row in GOOD_ROWS]

    result = _validate(_write_jsonl(tmp_path / "renamed.jsonl", rows))

    assert result.error_count == 0
    assert result.file_error is not None
    assert result.file_error.field == "text"
    assert "'body', 'label'" in result.file_error.reason


def test_missing_field_in_one_jsonl_row(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "partial.jsonl", [*GOOD_ROWS, {"text": "no label here"}])

    assert _only_error(_validate(path)) == (5, "label", "row 5: field 'label' is missing")


@pytest.mark.parametrize(("text", "what"), [("", "empty"), ("  \t ", "only whitespace")])
def test_empty_text(tmp_path: Path, text: str, what: str) -> None:
    path = _write_jsonl(tmp_path / "empty.jsonl", [*GOOD_ROWS[:2], {"text": text, "label": "billing"}])

    assert _only_error(_validate(path)) == (3, "text", f"row 3: field 'text' is {what}")


def test_null_label(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "null.jsonl", [*GOOD_ROWS, {"text": "help", "label": None}])

    assert _only_error(_validate(path)) == (5, "label", "row 5: field 'label' is null")


@pytest.mark.parametrize(("label", "what"), [(1.5, "a number"), (True, "a boolean"), (["a"], "an array")])
def test_unsupported_label_types_are_refused(tmp_path: Path, label: object, what: str) -> None:
    path = _write_jsonl(tmp_path / "types.jsonl", [*GOOD_ROWS, {"text": "help", "label": label}])

    row, field, reason = _only_error(_validate(path))

    assert (row, field) == (5, "label")
    assert f"got {what}" in reason


def test_integer_labels_become_label_names(tmp_path: Path) -> None:
    rows = [{"text": f"text {i}", "label": i % 3} for i in range(9)]

    result = _validate(_write_jsonl(tmp_path / "ints.jsonl", rows))

    assert result.ok
    assert result.labels == ["0", "1", "2"]


def test_text_over_the_character_limit(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "long.jsonl", [*GOOD_ROWS, {"text": "x" * 51, "label": "billing"}])

    row, field, reason = _only_error(_validate(path, max_text_chars=50))

    assert (row, field) == (5, "text")
    assert reason == "row 5: field 'text' has 51 characters; the limit is 50"


def test_label_over_the_character_limit(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "label.jsonl", [*GOOD_ROWS, {"text": "hi", "label": "b" * 101}])

    row, field, _ = _only_error(_validate(path))

    assert (row, field) == (5, "label")


def test_one_class_only(tmp_path: Path) -> None:
    rows = [{"text": f"invoice {i}", "label": "billing"} for i in range(5)]

    result = _validate(_write_jsonl(tmp_path / "one.jsonl", rows))

    assert result.error_count == 0
    assert result.file_error is not None
    assert "1 class ('billing')" in result.file_error.reason


def test_wrong_encoding_on_one_jsonl_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    lines = [json.dumps(row) for row in GOOD_ROWS[:2]]
    path.write_bytes(
        ("\n".join(lines) + "\n").encode() + '{"text": "café", "label": "billing"}\n'.encode("latin-1")
    )

    row, _, reason = _only_error(_validate(path))

    assert row == 3
    assert "row 3 is not valid UTF-8" in reason


def test_wrong_encoding_in_a_csv_row(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\nhello,a\ncafé,b\nbye,a\n".encode("latin-1"))

    result = _validate(path, "csv")

    row, _, reason = _only_error(result)
    assert row == 2
    assert reason.startswith("row 2 (line 3) is not valid UTF-8")
    assert result.report["valid_row_count"] == 2


def test_csv_ragged_row_says_expected_and_found(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("text,label\nhello,a\nI paid, but nothing came,b\nbye,b\n", encoding="utf-8")

    row, _, reason = _only_error(_validate(path, "csv"))

    assert row == 2
    assert reason.startswith("row 2 (line 3) has 3 fields but the header has 2")


def test_binary_file_named_parquet(tmp_path: Path) -> None:
    path = tmp_path / "junk.parquet"
    path.write_bytes(bytes(range(256)) * 4)

    result = _validate(path, "parquet")

    assert result.file_error is not None
    assert "Parquet file cannot be read" in result.file_error.reason


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")

    result = _validate(path)

    assert result.row_count == 0
    assert result.file_error is not None
    assert "0 valid rows" in result.file_error.reason


def test_too_many_rows_stops_reading_at_the_limit(tmp_path: Path) -> None:
    rows = [{"text": f"ticket {i}", "label": "ab"[i % 2]} for i in range(50)]

    result = _validate(_write_jsonl(tmp_path / "many.jsonl", rows), max_rows=5)

    assert result.file_error is not None
    assert result.file_error.row == 6
    assert "more than 5 rows" in result.file_error.reason
    assert result.row_count == 5


def test_too_many_classes_stops_at_the_first_class_over_the_limit(tmp_path: Path) -> None:
    # The label column mapped to the text: every row is a class of its own.
    rows = [{"text": f"ticket {i}", "label": f"ticket {i}"} for i in range(50)]

    result = _validate(_write_jsonl(tmp_path / "classes.jsonl", rows), max_classes=3)

    assert result.file_error is not None
    assert (result.file_error.row, result.file_error.field) == (4, "label")
    assert "beyond the limit of 3 classes ('ticket 3')" in result.file_error.reason
    assert result.row_count == 4


def test_too_few_valid_rows(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "few.jsonl", [GOOD_ROWS[0], {"text": "", "label": "x"}])

    result = _validate(path)

    assert result.file_error is not None
    assert "1 valid rows (of 2)" in result.file_error.reason


def test_error_list_is_capped_but_every_error_is_counted(tmp_path: Path) -> None:
    rows = [*GOOD_ROWS, *({"text": "", "label": "billing"} for _ in range(30))]

    result = _validate(_write_jsonl(tmp_path / "many_bad.jsonl", rows), max_errors_listed=10)

    assert result.error_count == 30
    assert [error.row for error in result.errors] == list(range(5, 15))


def test_mapped_columns_and_text_pair_in_parquet(tmp_path: Path) -> None:
    path = tmp_path / "pairs.parquet"
    table = pa.table(
        {
            "question": ["Is it late?", "Was I billed?", None],
            "context": ["The parcel left today.", "Invoice 12 was paid.", "x"],
            "intent": [1, 2, 1],
        }
    )
    pq.write_table(table, path)
    mapping = ColumnMapping(text="question", label="intent", text_pair="context")

    result = validate_classification(path, "parquet", mapping)

    assert _only_error(result) == (3, "question", "row 3: field 'question' is null")
    assert result.labels == ["1", "2"]
    assert result.report["valid_row_count"] == 2


def test_iter_classification_rows_yields_the_validated_rows(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows([{**row, "label": f" {row['label']} "} for row in GOOD_ROWS])

    rows = list(iter_classification_rows(path, "csv", ColumnMapping()))

    # Labels are compared without surrounding spaces, as validation counted them.
    assert [(row.text, row.label, row.row) for row in rows] == [
        (row["text"], row["label"], number) for number, row in enumerate(GOOD_ROWS, start=1)
    ]


def test_iter_classification_rows_refuses_a_bad_row(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", [*GOOD_ROWS, {"text": "x", "label": None}])

    with pytest.raises(DatasetFileError, match="row 5: field 'label' is null"):
        list(iter_classification_rows(path, "jsonl", ColumnMapping()))


def test_memory_stays_bounded_on_a_large_file(tmp_path: Path) -> None:
    path = tmp_path / "large.jsonl"
    words = [
        "refund",
        "parcel",
        "login",
        "crash",
        "feature",
        "invoice",
        "courier",
        "password",
        "screen",
        "export",
    ]
    rng = random.Random(0)
    # Long rows keep the test fast; every row is distinct, so nothing can be deduplicated away.
    body = " ".join(rng.choices(words, k=1200))
    row_count = 6_000
    with path.open("w", encoding="utf-8") as file:
        for i in range(row_count):
            file.write(json.dumps({"text": f"ticket {i}: {body}", "label": words[i % 5]}) + "\n")
    file_size = path.stat().st_size
    assert file_size > 45_000_000

    tracemalloc.start()
    try:
        result = _validate(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.ok
    assert result.row_count == row_count
    assert peak < file_size / 20, f"peak {peak:,} bytes for a {file_size:,}-byte file"
