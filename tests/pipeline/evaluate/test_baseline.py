from __future__ import annotations

import numpy as np
import pytest

from shared.pipeline.evaluate.baseline import (
    compare,
    majority_baseline_probabilities,
    majority_label,
    probabilities_from_labels,
)
from tests.support.datasets import read_rows


def test_majority_label_of_imbalanced_training_labels() -> None:
    train_labels = [row["label"] for row in read_rows("sms_spam", "train")]
    assert majority_label(train_labels, ["ham", "spam"]) == "ham"
    probabilities = majority_baseline_probabilities(train_labels, ["ham", "spam"], 3)
    assert probabilities.tolist() == [[1.0, 0.0]] * 3


def test_majority_tie_goes_to_the_lower_class_index() -> None:
    assert majority_label(["b", "a", "b", "a"], ["b", "a"]) == "b"
    assert majority_label(["b", "a", "b", "a"], ["a", "b"]) == "a"


def test_compare_reports_both_sides_and_deltas_on_the_same_rows() -> None:
    labels = ["billing", "delivery", "refund"]
    y_true = ["billing", "delivery", "refund", "refund"] * 25
    candidate = probabilities_from_labels(y_true[:90] + ["billing"] * 10, labels)
    baseline = probabilities_from_labels(["refund"] * 100, labels)
    comparison = compare(y_true, candidate, baseline, labels, baseline_name="majority class", seed=1)
    accuracy = comparison["metrics"]["accuracy"]
    assert accuracy["candidate"] == pytest.approx(
        np.mean([p == t for p, t in zip(y_true[:90] + ["billing"] * 10, y_true, strict=True)])
    )
    assert accuracy["baseline"] == pytest.approx(0.5)
    assert accuracy["delta"] == pytest.approx(accuracy["candidate"] - accuracy["baseline"])
    assert accuracy["delta_interval"]["low"] > 0
    assert comparison["metrics"]["ece"]["higher_is_better"] is False
    assert comparison["metrics"]["roc_auc"]["delta_interval"] is None
    assert comparison["mcnemar"]["only_candidate_correct"] > comparison["mcnemar"]["only_baseline_correct"]
    assert comparison["mcnemar"]["p_value"] < 0.001


def test_baseline_predictions_must_cover_the_same_rows() -> None:
    labels = ["a", "b"]
    with pytest.raises(ValueError, match="expected \\(3, 2\\)"):
        compare(["a", "b", "a"], np.full((3, 2), 0.5), np.full((2, 2), 0.5), labels)
