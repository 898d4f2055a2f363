from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from shared.data.report import (
    MAX_EXAMPLES,
    WORD_COUNT_SKIPPED,
    ClassificationProfile,
    InstructionProfile,
    TextDigests,
    dataset_overlap,
    normalize_text,
    token_length_stats,
    word_count,
)
from shared.data.validation import validate_classification
from shared.jobs.spec import ColumnMapping
from tests.support.datasets import sample_rows
from tests.support.tiny_models import build_tiny_bert


def _profile(rows: list[tuple[str, str]]) -> ClassificationProfile:
    profile = ClassificationProfile()
    for number, (text, label) in enumerate(rows, start=1):
        profile.add(number, text, label)
    return profile


def test_label_distribution_counts_and_shares_most_frequent_first() -> None:
    rows = [("t1", "b"), ("t2", "a"), ("t3", "a"), ("t4", "c"), ("t5", "a"), ("t6", "b")]

    labels = _profile(rows).report()["labels"]

    assert [(c["label"], c["count"]) for c in labels["classes"]] == [("a", 3), ("b", 2), ("c", 1)]
    assert [c["share"] for c in labels["classes"]] == [0.5, 0.3333, 0.1667]
    assert labels["class_count"] == 3
    assert labels["majority_share"] == 0.5
    assert labels["imbalance_ratio"] == 3.0


def test_length_percentiles_in_characters_and_words() -> None:
    # Row i has i characters; rows with 1-9 characters are one word, the rest two.
    rows = [("x" * (i - 5) + " " + "y" * 4 if i > 9 else "z" * i, "a") for i in range(1, 101)]

    lengths = _profile(rows).report()["lengths"]

    assert lengths["chars"]["max"] == 100
    assert lengths["chars"]["p50"] == float(np.percentile(np.arange(1, 101), 50))
    assert lengths["chars"]["p99"] == float(round(np.percentile(np.arange(1, 101), 99), 1))
    assert lengths["words"]["max"] == 2
    assert lengths["words"]["p50"] == 2.0


def test_exact_duplicates_count_the_repeats_and_show_their_rows() -> None:
    rows = [("x", "a"), ("y", "b"), ("unique", "a"), ("x", "a"), ("y", "b"), ("y", "b")]

    exact = _profile(rows).report()["duplicates"]["exact"]

    assert exact == {"rows": 3, "groups": 2, "examples": [[1, 4], [2, 5, 6]]}


def test_conflicting_duplicates_ignore_case_and_spacing_but_need_different_labels() -> None:
    rows = [
        ("Refund please", "billing"),
        ("Where is my parcel", "shipping"),
        ("refund   PLEASE ", "shipping"),
        ("where is my parcel", "shipping"),
    ]

    duplicates = _profile(rows).report()["duplicates"]

    assert duplicates["conflicting"] == {
        "rows": 2,
        "groups": 1,
        "examples": [{"rows": [1, 3], "labels": ["billing", "shipping"]}],
    }
    # Normalized-equal texts are not exact duplicates.
    assert duplicates["exact"]["rows"] == 0


def test_many_duplicate_groups_are_all_counted_and_the_first_are_shown_in_file_order() -> None:
    # 2,000 texts, each written twice; the second copy of every other text has another label.
    rows = [(f"ticket {i}", "a") for i in range(2000)]
    rows += [(f"TICKET  {i}", "b" if i % 2 else "a") for i in range(2000)]
    rows += [(f"ticket {i}", "a") for i in range(2000)]

    duplicates = _profile(rows).report()["duplicates"]

    assert duplicates["exact"]["rows"] == 2000
    assert duplicates["exact"]["groups"] == 2000
    assert duplicates["exact"]["examples"] == [[i + 1, i + 4001] for i in range(MAX_EXAMPLES)]
    assert duplicates["conflicting"]["groups"] == 1000
    assert duplicates["conflicting"]["rows"] == 3000
    assert [e["rows"] for e in duplicates["conflicting"]["examples"]] == [
        [i + 1, i + 2001, i + 4001] for i in range(1, 2 * MAX_EXAMPLES, 2)
    ]


def test_normalize_text_folds_width_case_and_whitespace() -> None:
    # Full-width "Refund", as typed with a CJK input method.
    assert normalize_text("  \uff32\uff45\uff46\uff55\uff4e\uff44\tNOW\n please ") == "refund now please"


def test_overlap_seen_from_the_second_dataset() -> None:
    train = ["x", "y", "z", "y"]
    test = ["y", "w", "x", "x"]

    overlap = dataset_overlap(train, test)

    assert overlap["rows"] == 3
    assert overlap["share"] == 0.75
    assert overlap["distinct_texts"] == 2
    assert {(e["a_row"], e["b_row"]) for e in overlap["examples"]} == {(2, 1), (1, 3), (1, 4)}


def test_overlap_of_disjoint_datasets_is_zero() -> None:
    assert dataset_overlap(TextDigests.from_texts(["a", "b"]), ["c"])["rows"] == 0


def test_sms_spam_train_test_overlap_matches_its_readme(datasets_dir: Path) -> None:
    # The dataset's README states that 120 test messages also occur verbatim in train.
    train = validate_classification(datasets_dir / "sms_spam" / "train.jsonl", "jsonl", ColumnMapping())
    test = validate_classification(datasets_dir / "sms_spam" / "test.jsonl", "jsonl", ColumnMapping())

    overlap = dataset_overlap(train.digests, test.digests)

    assert overlap["rows"] == 120
    assert overlap["share"] == round(120 / 1114, 4)


def test_validation_report_is_json(datasets_dir: Path) -> None:
    result = validate_classification(datasets_dir / "banking77" / "test.jsonl", "jsonl", ColumnMapping())

    document = json.loads(json.dumps(result.as_dict()))

    assert document["report"]["labels"]["class_count"] == 77
    assert document["report"]["row_count"] == 3080


def test_token_length_stats_with_a_real_tokenizer(tmp_path: Path) -> None:
    texts = ["refund", "refund please", "where is my parcel now"]
    tokenizer = AutoTokenizer.from_pretrained(build_tiny_bert(tmp_path / "base", texts))

    stats = token_length_stats(texts, tokenizer, max_length=4, batch_size=2)

    # Every word is in the vocabulary; [CLS] and [SEP] add two tokens per text.
    assert stats["tokens"]["max"] == 7
    assert stats["tokens"]["p50"] == 4.0
    assert stats["truncated_rows"] == 1
    assert stats["truncated_share"] == round(1 / 3, 4)


def test_chinese_rows_count_a_word_per_character_not_one_per_row() -> None:
    texts = [row["text"] for row in sample_rows("chnsenticorp_htl", "test", 200)]
    profile = _profile([(text, "a" if index % 2 else "b") for index, text in enumerate(texts)])

    lengths = profile.report()["lengths"]

    # Hotel reviews are mostly ideographs: words come close to characters, far from 1 per row.
    assert lengths["words"]["p50"] >= 0.7 * lengths["chars"]["p50"]
    assert lengths["words"]["p50"] > 20
    assert lengths["words_skipped_rows"] == 0


def test_english_word_counts_are_the_whitespace_split() -> None:
    texts = [row["text"] for row in sample_rows("sms_spam", "test", 200)]
    profile = _profile([(text, "a" if index % 2 else "b") for index, text in enumerate(texts)])

    words = profile.report()["lengths"]["words"]

    expected = np.array([len(normalize_text(text).split()) for text in texts])
    assert words["max"] == int(expected.max())
    assert words["p50"] == round(float(np.percentile(expected, 50)), 1)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("我用iPhone 12拍照", 6),  # 我 用 拍 照, then iPhone and 12
        ("房间很大\uff0c床有2M宽\uff01", 8),  # 7 ideographs and "2M"; full-width punctuation is no word
        ("東京タワーに行きました", 11),  # kanji and kana, one each
        ("안녕하세요 반갑습니다", 2),  # Korean separates words with spaces
        ("refund  please ", 2),
        ("สวัสดีครับ", WORD_COUNT_SKIPPED),  # Thai: no spaces between words, not counted
    ],
)
def test_word_count_by_script(text: str, words: int) -> None:
    assert word_count(text) == words


def test_rows_in_unspaced_scripts_are_left_out_of_word_lengths() -> None:
    rows = [("สวัสดีครับ ผม", "a"), ("where is my parcel", "b"), ("refund", "a")]

    lengths = _profile(rows).report()["lengths"]

    assert lengths["words_skipped_rows"] == 1
    assert (lengths["words"]["max"], lengths["words"]["mean"]) == (4, 2.5)


def test_instruction_responses_in_chinese_count_words_per_character() -> None:
    profile = InstructionProfile()
    profile.add(1, "介绍一下你自己", "我是一个助手\uff0c很高兴认识你\u3002", "alpaca")
    profile.add(2, "Say hi", "Hello there, friend.", "alpaca")

    response = profile.report()["lengths"]["response"]

    assert response["words"]["max"] == 12
    assert response["words"]["p50"] == 7.5
