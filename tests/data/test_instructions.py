from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from shared.data.errors import DatasetFileError
from shared.data.instructions import ChatMessage, iter_instruction_rows, validate_instructions

CHAT_ROW = {
    "messages": [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": "Where is my parcel?"},
        {"role": "assistant", "content": "It left the depot this morning."},
    ]
}
ALPACA_ROW = {"instruction": "Summarize the ticket.", "input": "My parcel is late.", "output": "Late parcel."}


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _reasons(path: Path) -> list[tuple[int | None, str]]:
    return [(error.row, error.reason) for error in validate_instructions(path, "jsonl").errors]


@pytest.mark.parametrize("name", ["alpaca_en_demo", "alpaca_zh_demo"])
def test_real_alpaca_demos_pass(datasets_dir: Path, name: str) -> None:
    path = datasets_dir / name / "train.jsonl"

    result = validate_instructions(path, "jsonl")

    assert result.ok, result.errors[:3]
    assert result.row_count == 900
    assert result.report["styles"] == {"alpaca": 900}
    assert result.report["lengths"]["response"]["chars"]["max"] > 0


def test_alpaca_rows_become_a_user_turn_and_an_answer(datasets_dir: Path) -> None:
    path = datasets_dir / "alpaca_en_demo" / "train.jsonl"
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])

    row = next(iter_instruction_rows(path, "jsonl"))

    expected_prompt = first["instruction"] + (f"\n\n{first['input']}" if first["input"] else "")
    assert row.prompt == (ChatMessage("user", expected_prompt),)
    assert row.response == first["output"]
    assert row.style == "alpaca"


def test_chat_rows_keep_their_messages(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "chat.jsonl", [CHAT_ROW, ALPACA_ROW])

    result = validate_instructions(path, "jsonl")
    rows = list(iter_instruction_rows(path, "jsonl"))

    assert result.ok
    assert result.report["styles"] == {"alpaca": 1, "chat": 1}
    assert [message.role for message in rows[0].messages] == ["system", "user", "assistant"]
    assert rows[0].response == "It left the depot this morning."


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        (
            [{"role": "user", "content": "hi"}],
            "row 2: the last message is from the user; it must be the assistant's answer",
        ),
        ([{"role": "assistant", "content": "hello"}], "row 2: field 'messages' has no user message"),
        (
            [{"role": "bot", "content": "hi"}, {"role": "assistant", "content": "ok"}],
            "row 2: messages[0] has role 'bot'; use 'system', 'user' or 'assistant'",
        ),
        (
            [
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "be nice"},
                {"role": "assistant", "content": "ok"},
            ],
            "row 2: messages[1] is a system message; only the first may be",
        ),
        (
            [{"role": "user", "content": " "}, {"role": "assistant", "content": "ok"}],
            "row 2: field 'messages[0].content' is empty",
        ),
        ([], "row 2: field 'messages' must be a non-empty array, got empty"),
        ("hello", "row 2: field 'messages' is not a JSON array"),
        (["hi"], "row 2: messages[0] is a string, not an object"),
    ],
)
def test_bad_chat_rows(tmp_path: Path, messages: object, reason: str) -> None:
    path = _write_jsonl(tmp_path / "chat.jsonl", [CHAT_ROW, {"messages": messages}, CHAT_ROW])

    assert _reasons(path) == [(2, reason)]


def test_bad_alpaca_rows(tmp_path: Path) -> None:
    rows = [
        ALPACA_ROW,
        {"instruction": "Translate.", "input": "Bonjour"},
        {"instruction": "", "output": "x"},
        {"instruction": "Add.", "input": 3, "output": "4"},
        {"instruction": "Hi", "input": None, "output": "Hello"},
    ]

    result = validate_instructions(_write_jsonl(tmp_path / "alpaca.jsonl", rows), "jsonl")

    assert [(e.row, e.reason) for e in result.errors] == [
        (2, "row 2: field 'output' is missing or null"),
        (3, "row 3: field 'instruction' is empty"),
        (4, "row 4: field 'input' must be a string, got a number"),
    ]
    assert result.report["valid_row_count"] == 2


def test_a_file_with_no_instruction_fields_is_one_file_error(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "labels.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}])

    result = validate_instructions(path, "jsonl")

    assert result.error_count == 0
    assert result.file_error is not None
    assert "the file has columns 'text', 'label'" in result.file_error.reason


def test_chat_messages_as_json_text_in_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "chat.csv"
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["messages"])
        writer.writerows([[json.dumps(CHAT_ROW["messages"])]] * 3)

    result = validate_instructions(path, "csv")

    assert result.ok
    assert result.report["duplicates"]["exact"]["rows"] == 2


def test_iter_instruction_rows_refuses_a_bad_row(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", [ALPACA_ROW, {"instruction": "x"}])

    with pytest.raises(DatasetFileError, match="row 2: field 'output' is missing or null"):
        list(iter_instruction_rows(path, "jsonl"))
