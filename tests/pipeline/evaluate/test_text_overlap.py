from __future__ import annotations

import pytest

from shared.pipeline.evaluate.text_overlap import exact_match, overlap_metrics, token_f1


def test_identical_answers_score_perfectly() -> None:
    answers = ["The capital of France is Paris.", "Water boils at 100 degrees Celsius at sea level."]
    metrics = overlap_metrics(answers, answers)
    assert metrics["bleu"] == pytest.approx(100.0)
    for name in ("rouge1", "rouge2", "rougeL", "exact_match", "token_f1"):
        assert metrics[name] == pytest.approx(1.0), name


def test_unrelated_answers_score_zero() -> None:
    metrics = overlap_metrics(["purple elephants dance"], ["the capital of France is Paris"])
    assert metrics == {
        "bleu": 0.0,
        "rouge1": 0.0,
        "rouge2": 0.0,
        "rougeL": 0.0,
        "exact_match": 0.0,
        "token_f1": 0.0,
    }


def test_exact_match_ignores_case_punctuation_and_articles() -> None:
    assert exact_match("The Eiffel Tower!", "eiffel tower") == 1.0
    assert exact_match("Eiffel Tower", "Eiffel Towers") == 0.0


def test_token_f1_counts_shared_words() -> None:
    # Shared: "paris", "is", "capital" -> precision 3/4, recall 3/5.
    assert token_f1("paris is capital city", "paris is the capital of france") == pytest.approx(
        2 * 0.75 * 0.6 / 1.35
    )


def test_partial_overlap_sits_between_zero_and_one() -> None:
    metrics = overlap_metrics(["Paris is the capital of France"], ["The capital of France is Paris"])
    assert 0.0 < metrics["rougeL"] < 1.0
    assert metrics["rouge1"] == pytest.approx(1.0)
    assert metrics["token_f1"] == pytest.approx(1.0)
