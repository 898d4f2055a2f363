"""The worker's one call, end to end on a tiny BERT fitted on real sms_spam rows."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from shared.pipeline.evaluate import EvaluationOptions, evaluate_classifier
from shared.pipeline.evaluate.baseline import probabilities_from_labels

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def evaluation(trained_sms_classifier: dict[str, Any]):
    case = trained_sms_classifier
    return evaluate_classifier(
        case["model_dir"],
        case["test_rows"],
        [row["label"] for row in case["train_rows"]],
        gate={"metric": "f1_macro", "min": 0.5, "better_than_baseline": True},
        metric_points=case["metric_points"],
        options=EvaluationOptions(positive_label="spam", bootstrap_resamples=500),
    )


def test_report_predictions_and_gate_fit_together(evaluation, trained_sms_classifier: dict[str, Any]) -> None:
    report, predictions = evaluation.report, evaluation.predictions
    json.dumps(report)
    json.dumps(predictions)
    test_rows = trained_sms_classifier["test_rows"]
    assert [entry["text"] for entry in predictions] == [row["text"] for row in test_rows]
    assert [entry["true_label"] for entry in predictions] == [row["label"] for row in test_rows]
    predicted_spam = np.array([entry["predicted_label"] == "spam" for entry in predictions])
    true_spam = np.array([row["label"] == "spam" for row in test_rows])
    assert report["metrics"]["accuracy"] == pytest.approx(np.mean(predicted_spam == true_spam))
    # A few epochs on 600 rows teach even a tiny model that spam exists; the majority class never says it.
    assert report["metrics"]["f1_macro"] > report["baseline_comparison"]["metrics"]["f1_macro"]["baseline"]
    assert report["baseline_comparison"]["baseline"] == "majority class (ham)"
    assert report["gate"]["passed"] is evaluation.gate.passed is True
    assert report["gate"]["spec"]["metric"] == "f1_macro"
    assert {entry["perturbation"] for entry in report["robustness"]["perturbations"]} == {
        "typos",
        "casing",
        "whitespace",
        "truncation",
    }


def test_pictures_are_returned_as_png_files(evaluation) -> None:
    assert set(evaluation.pictures) == {
        "confusion_matrix.png",
        "reliability_diagram.png",
        "per_class_f1.png",
        "training_curves.png",
    }
    for name, png in evaluation.pictures.items():
        assert png.startswith(PNG_SIGNATURE), name
        assert len(png) > 5_000, name


def test_another_models_predictions_serve_as_the_baseline(trained_sms_classifier: dict[str, Any]) -> None:
    case = trained_sms_classifier
    test_rows = case["test_rows"]
    # A "production model" that is right on every row: the candidate cannot be significantly better.
    perfect = probabilities_from_labels([row["label"] for row in test_rows], ["ham", "spam"])
    result = evaluate_classifier(
        case["model_dir"],
        test_rows,
        [row["label"] for row in case["train_rows"]],
        baseline_probabilities=perfect,
        baseline_name="production v1",
        gate={"metric": "accuracy", "better_than_baseline": True},
        options=EvaluationOptions(robustness=False, bootstrap_resamples=200),
    )
    comparison = result.report["baseline_comparison"]
    assert comparison["baseline"] == "production v1"
    assert comparison["metrics"]["accuracy"]["baseline"] == 1.0
    assert comparison["metrics"]["accuracy"]["delta"] <= 0
    assert not result.gate.passed
    assert "production v1" in result.gate.reasons[0]
    assert result.report["robustness"] is None
    assert "training_curves.png" not in result.pictures


def test_an_invalid_gate_is_refused_before_any_work(trained_sms_classifier: dict[str, Any]) -> None:
    case = trained_sms_classifier
    with pytest.raises(ValueError, match="unknown gate metric"):
        evaluate_classifier(case["model_dir"], case["test_rows"], ["ham"], gate={"metric": "f2", "min": 0.5})
