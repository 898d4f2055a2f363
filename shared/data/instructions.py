"""Validate and read instruction-tuning data: Alpaca rows or chat rows.

An Alpaca row has `instruction`, an optional `input` and `output`; a chat row has `messages`, a list
of {"role": "system" | "user" | "assistant", "content": ...} that ends with the assistant's answer.
Both become an `InstructionRow` of chat messages, so training renders either with the base model's
chat template and puts the loss on the last (assistant) message only. Reporting follows
`shared.data.validation`: every bad row with its number and reason, whole-file problems once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shared.data.errors import DatasetFileError, ErrorLog, RowError
from shared.data.formats import DatasetFormat, Record, iter_records, json_type_name
from shared.data.report import InstructionProfile
from shared.data.validation import MAX_COLUMNS_LISTED, ValidationLimits, ValidationResult

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")
InstructionStyle = Literal["alpaca", "chat"]
# The field a row without any known field is reported under; also names the missing "column".
_SHAPE_FIELD = "messages"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class InstructionRow:
    messages: tuple[ChatMessage, ...]
    style: InstructionStyle
    row: int

    @property
    def prompt(self) -> tuple[ChatMessage, ...]:
        """Everything the model reads before its answer."""
        return self.messages[:-1]

    @property
    def response(self) -> str:
        """The answer the loss is computed on."""
        return self.messages[-1].content


def validate_instructions(
    path: Path, fmt: DatasetFormat, limits: ValidationLimits = ValidationLimits()
) -> ValidationResult:
    error_log = ErrorLog(max_listed=limits.max_errors_listed)
    profile = InstructionProfile()
    row_count = 0
    object_rows = 0
    seen_fields: dict[str, None] = {}
    file_error: RowError | None = None
    try:
        for record in iter_records(path, fmt):
            if record.row > limits.max_rows:
                file_error = RowError(
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
            row = check_instruction_record(record, limits, error_log)
            if row is not None:
                profile.add(
                    row.row, _render(row.prompt), row.response, row.style, [m.role for m in row.messages]
                )
    except DatasetFileError as error:
        file_error = error.as_row_error()

    if file_error is None and object_rows and error_log.missing_count(_SHAPE_FIELD) == object_rows:
        error_log.forget_missing(_SHAPE_FIELD)
        found = ", ".join(f"'{name}'" for name in seen_fields) or "none"
        file_error = RowError(
            row=None,
            field=_SHAPE_FIELD,
            reason="no row has 'messages' (chat) or 'instruction' and 'output' (Alpaca); "
            f"the file has columns {found}",
        )
    if file_error is None and len(profile) < limits.min_rows:
        file_error = RowError(
            row=None,
            field=None,
            reason=f"the file has {len(profile)} valid rows (of {row_count}); "
            f"at least {limits.min_rows} are needed",
        )
    report: dict[str, object] = {
        "task": "instruction-tuning",
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
        labels=[],
        row_count=row_count,
        report=report,
        digests=profile.text_digests(),
    )


def iter_instruction_rows(
    path: Path, fmt: DatasetFormat, limits: ValidationLimits = ValidationLimits()
) -> Iterator[InstructionRow]:
    """Yield the rows of a file that passed validation; raise DatasetFileError on a bad row."""
    error_log = ErrorLog(max_listed=1)
    for record in iter_records(path, fmt):
        row = check_instruction_record(record, limits, error_log)
        if row is None:
            first = error_log.errors[0]
            raise DatasetFileError(first.reason, row=first.row, field=first.field)
        yield row


def check_instruction_record(
    record: Record, limits: ValidationLimits, error_log: ErrorLog
) -> InstructionRow | None:
    """Check one record as an Alpaca or a chat row; log its problems or return the clean row."""
    if record.fields is None:
        error_log.add(record.row, None, f"{record.where} {record.problem}")
        return None
    fields = record.fields
    if "messages" in fields:
        return _check_chat(record, fields["messages"], limits, error_log)
    if "instruction" in fields or "output" in fields:
        return _check_alpaca(record, limits, error_log)
    found = ", ".join(f"'{name}'" for name in list(fields)[:MAX_COLUMNS_LISTED]) or "no fields"
    error_log.add_missing(
        record.row,
        _SHAPE_FIELD,
        f"{record.where} has neither 'messages' (chat) nor 'instruction' and 'output' (Alpaca); "
        f"it has {found}",
    )
    return None


def _check_alpaca(record: Record, limits: ValidationLimits, error_log: ErrorLog) -> InstructionRow | None:
    assert record.fields is not None
    problems_before = error_log.count
    instruction = _text_field(record, "instruction", record.fields.get("instruction"), limits, error_log)
    output = _text_field(record, "output", record.fields.get("output"), limits, error_log)
    extra_input = record.fields.get("input")
    # "input" is optional: absent, null or "" all mean the instruction stands alone.
    if extra_input not in (None, ""):
        extra_input = _text_field(record, "input", extra_input, limits, error_log)
    if error_log.count != problems_before or instruction is None or output is None:
        return None
    prompt = f"{instruction}\n\n{extra_input}" if extra_input else instruction
    messages = (ChatMessage("user", prompt), ChatMessage("assistant", output))
    return InstructionRow(messages=messages, style="alpaca", row=record.row)


def _check_chat(
    record: Record, messages: object, limits: ValidationLimits, error_log: ErrorLog
) -> InstructionRow | None:
    if isinstance(messages, str):
        # CSV cannot hold a list, so a chat column there is a JSON string.
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError:
            error_log.add(record.row, "messages", f"{record.where}: field 'messages' is not a JSON array")
            return None
    if not isinstance(messages, list) or not messages:
        what = "empty" if isinstance(messages, list) else json_type_name(messages)
        error_log.add(
            record.row, "messages", f"{record.where}: field 'messages' must be a non-empty array, got {what}"
        )
        return None
    problems_before = error_log.count
    checked: list[ChatMessage] = []
    for index, message in enumerate(messages):
        where = f"{record.where}: messages[{index}]"
        if not isinstance(message, dict):
            error_log.add(record.row, "messages", f"{where} is {json_type_name(message)}, not an object")
            continue
        role = message.get("role")
        if role not in ROLES:
            error_log.add(
                record.row, "messages", f"{where} has role {role!r}; use 'system', 'user' or 'assistant'"
            )
            continue
        if role == "system" and index != 0:
            error_log.add(record.row, "messages", f"{where} is a system message; only the first may be")
            continue
        content = _text_field(record, f"messages[{index}].content", message.get("content"), limits, error_log)
        if content is not None:
            checked.append(ChatMessage(role, content))
    if error_log.count != problems_before:
        return None
    if not any(message.role == "user" for message in checked):
        error_log.add(record.row, "messages", f"{record.where}: field 'messages' has no user message")
        return None
    if checked[-1].role != "assistant":
        error_log.add(
            record.row,
            "messages",
            f"{record.where}: the last message is from the {checked[-1].role}; "
            "it must be the assistant's answer",
        )
        return None
    return InstructionRow(messages=tuple(checked), style="chat", row=record.row)


def _text_field(
    record: Record, name: str, value: object, limits: ValidationLimits, error_log: ErrorLog
) -> str | None:
    problem = None
    if value is None:
        problem = "is missing or null"
    elif not isinstance(value, str):
        problem = f"must be a string, got {json_type_name(value)}"
    elif not value.strip():
        problem = "is empty"
    elif len(value) > limits.max_text_chars:
        problem = f"has {len(value):,} characters; the limit is {limits.max_text_chars:,}"
    elif "\x00" in value:
        problem = "contains a NUL character"
    if problem is not None:
        error_log.add(record.row, name, f"{record.where}: field '{name}' {problem}")
        return None
    return value if isinstance(value, str) else None


def _render(messages: tuple[ChatMessage, ...]) -> str:
    """A plain rendering of the prompt, for lengths and duplicate detection in the report."""
    if len(messages) == 1:
        return messages[0].content
    return "\n".join(f"{message.role}: {message.content}" for message in messages)
