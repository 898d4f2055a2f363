"""Validate a classification dataset before any GPU time is spent on it.

Every row is checked and every problem counted; the first `max_errors_listed` are listed with the
row number and a reason a user can act on. Problems of the file as a whole (a missing column, too
few or too many rows, a single class) are reported once, as `file_error`. The same row checks back
`iter_classification_rows`, which the worker uses to reload a file that already passed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from shared.data.columns import ColumnMapping
from shared.data.errors import DatasetFileError, ErrorLog, RowError
from shared.data.formats import DatasetFormat, Record, iter_records, json_type_name, read_columns
from shared.data.report import ClassificationProfile, TextDigests
from shared.text import check_text

# How many field names a "missing column" message lists.
MAX_COLUMNS_LISTED = 30


@dataclass(frozen=True)
class ValidationLimits:
    max_rows: int = 1_000_000
    max_text_chars: int = 20_000
    max_label_chars: int = 100
    max_classes: int = 1000
    min_rows: int = 2
    min_classes: int = 2
    max_errors_listed: int = 100


@dataclass(frozen=True, slots=True)
class ClassificationRow:
    text: str
    label: str
    text_pair: str | None
    row: int


@dataclass
class ValidationResult:
    """The outcome of validating one file. `ok` means no row problem and no file problem."""

    ok: bool
    errors: list[RowError]
    error_count: int
    file_error: RowError | None
    labels: list[str]
    row_count: int
    report: dict[str, object]
    # Exact-text digests of the valid rows, for `dataset_overlap` against another dataset.
    digests: TextDigests | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, object]:
        """The JSON form for the API and the stored report (digests are left out)."""
        return {
            "ok": self.ok,
            "error_count": self.error_count,
            "errors": [error.as_dict() for error in self.errors],
            "file_error": self.file_error.as_dict() if self.file_error else None,
            "labels": self.labels,
            "row_count": self.row_count,
            "report": self.report,
        }


def file_failure(error: RowError) -> ValidationResult:
    """A result for a file that could not be read far enough to check its rows."""
    return ValidationResult(
        ok=False,
        errors=[],
        error_count=0,
        file_error=error,
        labels=[],
        row_count=0,
        report={"row_count": 0},
    )


def validate_classification(
    path: Path,
    fmt: DatasetFormat,
    mapping: ColumnMapping,
    limits: ValidationLimits = ValidationLimits(),
) -> ValidationResult:
    wanted = _mapped_fields(mapping)
    try:
        declared = read_columns(path, fmt)
    except DatasetFileError as error:
        return file_failure(error.as_row_error())
    if declared is not None:
        missing = [name for name in wanted if name not in declared]
        if missing:
            return file_failure(_missing_column_error(missing[0], declared, fmt))

    error_log = ErrorLog(max_listed=limits.max_errors_listed)
    profile = ClassificationProfile()
    row_count = 0
    object_rows = 0
    # JSONL declares no columns; the field names seen in the rows serve to name a missing column.
    seen_fields: dict[str, None] = {}
    too_many_rows: RowError | None = None
    too_many_classes: RowError | None = None
    try:
        for record in iter_records(path, fmt, columns=wanted if fmt == "parquet" else None):
            if record.row > limits.max_rows:
                too_many_rows = RowError(
                    row=record.row,
                    field=None,
                    reason=f"the file has more than {limits.max_rows:,} rows, the limit; "
                    "split it or sample it down",
                )
                break
            row_count = record.row
            if record.fields is not None:
                object_rows += 1
                if len(seen_fields) < MAX_COLUMNS_LISTED:
                    seen_fields.update(dict.fromkeys(record.fields))
            row = check_classification_record(record, mapping, limits, error_log)
            if row is not None:
                profile.add(row.row, row.text, row.label, row.text_pair)
                # Stop at the first class over the limit: a label column mapped to a text or id
                # column would otherwise grow the label index with every row.
                if profile.class_count > limits.max_classes:
                    too_many_classes = _too_many_classes_error(row, mapping.label, limits)
                    break
    except DatasetFileError as error:
        return _result(error.as_row_error(), error_log, profile, row_count)

    file_error = too_many_rows or too_many_classes
    if file_error is None and object_rows:
        for name in wanted:
            if error_log.missing_count(name) == object_rows:
                error_log.forget_missing(name)
                file_error = _missing_column_error(name, list(seen_fields), fmt)
                break
    if file_error is None:
        file_error = _dataset_shape_error(profile, row_count, mapping.label, limits)
    return _result(file_error, error_log, profile, row_count)


def iter_classification_rows(
    path: Path,
    fmt: DatasetFormat,
    mapping: ColumnMapping,
    limits: ValidationLimits = ValidationLimits(),
) -> Iterator[ClassificationRow]:
    """Yield the rows of a file that passed validation; raise DatasetFileError on a bad row."""
    error_log = ErrorLog(max_listed=1)
    columns = _mapped_fields(mapping) if fmt == "parquet" else None
    for record in iter_records(path, fmt, columns=columns):
        row = check_classification_record(record, mapping, limits, error_log)
        if row is None:
            first = error_log.errors[0]
            raise DatasetFileError(first.reason, row=first.row, field=first.field)
        yield row


def check_classification_record(
    record: Record, mapping: ColumnMapping, limits: ValidationLimits, error_log: ErrorLog
) -> ClassificationRow | None:
    """Check one record; log its problems and return None, or return the clean row."""
    if record.fields is None:
        error_log.add(record.row, None, f"{record.where} {record.problem}")
        return None
    problems_before = error_log.count
    text = _check_text(record, mapping.text, limits, error_log)
    text_pair = None
    if mapping.text_pair is not None:
        text_pair = _check_text(record, mapping.text_pair, limits, error_log)
    label = _check_label(record, mapping.label, limits, error_log)
    if error_log.count != problems_before or text is None or label is None:
        return None
    return ClassificationRow(text=text, label=label, text_pair=text_pair, row=record.row)


def _check_text(record: Record, name: str, limits: ValidationLimits, error_log: ErrorLog) -> str | None:
    value = _present_value(record, name, error_log)
    if value is None:
        return None
    if not isinstance(value, str):
        error_log.add(
            record.row, name, f"{record.where}: field '{name}' must be a string, got {json_type_name(value)}"
        )
        return None
    if not value.strip():
        what = "empty" if not value else "only whitespace"
        error_log.add(record.row, name, f"{record.where}: field '{name}' is {what}")
        return None
    if len(value) > limits.max_text_chars:
        error_log.add(
            record.row,
            name,
            f"{record.where}: field '{name}' has {len(value):,} characters; "
            f"the limit is {limits.max_text_chars:,}",
        )
        return None
    if "\x00" in value:
        # Texts are quoted in reports (duplicates, mistakes), which Postgres cannot store with a NUL.
        error_log.add(record.row, name, f"{record.where}: field '{name}' contains a NUL character")
        return None
    return value


def _check_label(record: Record, name: str, limits: ValidationLimits, error_log: ErrorLog) -> str | None:
    value = _present_value(record, name, error_log)
    if value is None:
        return None
    # Integer class ids are common and unambiguous, so they are accepted as their decimal string.
    # Booleans, fractional numbers and containers are refused: their string form would silently
    # become a class name nobody chose ("True", "1.0", "['a']").
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        error_log.add(
            record.row,
            name,
            f"{record.where}: field '{name}' must be a label name (a string or an integer), "
            f"got {json_type_name(value)} ({value!r})",
        )
        return None
    # Surrounding spaces (for example after a comma in a CSV) must not make "spam " a class of its own.
    label = value.strip()
    if not label:
        error_log.add(record.row, name, f"{record.where}: field '{name}' is empty")
        return None
    if len(label) > limits.max_label_chars:
        error_log.add(
            record.row,
            name,
            f"{record.where}: field '{name}' has {len(label):,} characters; label names are "
            f"limited to {limits.max_label_chars:,}; is the label column mapped to the text?",
        )
        return None
    try:
        # A label is a name (listed in reports, stored with the dataset): no control characters.
        check_text(label)
    except ValueError as exc:
        error_log.add(record.row, name, f"{record.where}: field '{name}' {exc}")
        return None
    return label


def _present_value(record: Record, name: str, error_log: ErrorLog) -> object | None:
    """The field's value, or None after logging that it is missing or null."""
    assert record.fields is not None
    if name not in record.fields:
        error_log.add_missing(record.row, name, f"{record.where}: field '{name}' is missing")
        return None
    value = record.fields[name]
    if value is None:
        error_log.add(record.row, name, f"{record.where}: field '{name}' is null")
    return value


def _mapped_fields(mapping: ColumnMapping) -> list[str]:
    names = [mapping.text, mapping.label]
    if mapping.text_pair is not None:
        names.append(mapping.text_pair)
    return names


def _missing_column_error(name: str, found: list[str], fmt: DatasetFormat) -> RowError:
    listed = ", ".join(f"'{column}'" for column in found[:MAX_COLUMNS_LISTED]) or "none"
    hint = " (CSV files need a header row)" if fmt == "csv" else ""
    return RowError(
        row=None,
        field=name,
        reason=f"column '{name}' not found; the file has columns {listed}{hint}; "
        "map the columns in the job spec if they are named differently",
    )


def _dataset_shape_error(
    profile: ClassificationProfile, row_count: int, label_field: str, limits: ValidationLimits
) -> RowError | None:
    """Whole-dataset problems that only show once every row has been read."""
    valid_rows = len(profile)
    if valid_rows < limits.min_rows:
        return RowError(
            row=None,
            field=None,
            reason=f"the file has {valid_rows} valid rows (of {row_count}); at least {limits.min_rows} are needed",
        )
    labels = profile.labels
    if len(labels) < limits.min_classes:
        shown = ", ".join(f"'{label}'" for label in labels)
        return RowError(
            row=None,
            field=label_field,
            reason=f"the valid rows have {len(labels)} class ({shown}); "
            f"classification needs at least {limits.min_classes}",
        )
    return None


def _too_many_classes_error(row: ClassificationRow, label_field: str, limits: ValidationLimits) -> RowError:
    return RowError(
        row=row.row,
        field=label_field,
        reason=f"row {row.row} brings a class beyond the limit of {limits.max_classes:,} classes "
        f"('{row.label}'); is the label column mapped to a text or id column?",
    )


def _result(
    file_error: RowError | None, error_log: ErrorLog, profile: ClassificationProfile, row_count: int
) -> ValidationResult:
    report: dict[str, object] = {
        "task": "text-classification",
        "row_count": row_count,
        "valid_row_count": len(profile),
        "error_count": error_log.count,
        **profile.report(),
    }
    return ValidationResult(
        ok=file_error is None and error_log.count == 0,
        errors=error_log.errors,
        error_count=error_log.count,
        file_error=file_error,
        labels=profile.labels,
        row_count=row_count,
        report=report,
        digests=profile.text_digests(),
    )
