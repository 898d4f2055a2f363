"""Every figure of the classification report, recomputed independently (plain numpy, no
scikit-learn) from the stored predictions table."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from shared.pipeline.evaluate.baseline import majority_baseline_probabilities
from shared.pipeline.evaluate.classification import classification_report, predictions_table
from tests.support.datasets import read_rows

TOLERANCE = 1e-9


def arrays_from_predictions(predictions: list[dict[str, Any]], labels: list[str]):
    index_of = {label: index for index, label in enumerate(labels)}
    y_true = np.array([index_of[entry["true_label"]] for entry in predictions])
    y_pred = np.array([index_of[entry["predicted_label"]] for entry in predictions])
    probabilities = np.array([[entry["probabilities"][label] for label in labels] for entry in predictions])
    return y_true, y_pred, probabilities


def class_counts(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int):
    hits = np.zeros(n_labels)
    np.add.at(hits, y_true[y_true == y_pred], 1)
    true_counts = np.bincount(y_true, minlength=n_labels).astype(float)
    pred_counts = np.bincount(y_pred, minlength=n_labels).astype(float)
    return hits, true_counts, pred_counts


def numpy_averages(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> dict[str, float]:
    hits, true_counts, pred_counts = class_counts(y_true, y_pred, n_labels)
    precision = np.where(pred_counts > 0, hits / np.maximum(pred_counts, 1), 0.0)
    recall = np.where(true_counts > 0, hits / np.maximum(true_counts, 1), 0.0)
    f1 = np.where(true_counts + pred_counts > 0, 2 * hits / np.maximum(true_counts + pred_counts, 1), 0.0)
    present = (true_counts + pred_counts) > 0
    figures = {"accuracy": float(np.mean(y_true == y_pred))}
    for name, values in (("precision", precision), ("recall", recall), ("f1", f1)):
        figures[f"{name}_macro"] = float(values[present].mean())
        figures[f"{name}_weighted"] = float((values * true_counts).sum() / true_counts.sum())
        figures[f"{name}_micro"] = float(hits.sum() / len(y_true))
    return figures


def numpy_roc_auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """Probability that a random positive outranks a random negative (ties count half)."""
    greater = (positive_scores[:, None] > negative_scores[None, :]).mean()
    ties = (positive_scores[:, None] == negative_scores[None, :]).mean()
    return float(greater + 0.5 * ties)


def numpy_average_precision(is_positive: np.ndarray, scores: np.ndarray) -> float:
    previous_recall, total = 0.0, 0.0
    for threshold in np.unique(scores)[::-1]:
        selected = scores >= threshold
        recall = is_positive[selected].sum() / is_positive.sum()
        precision = is_positive[selected].mean()
        total += (recall - previous_recall) * precision
        previous_recall = recall
    return float(total)


def test_banking77_report_agrees_with_independent_recomputation(banking77_case: dict[str, Any]) -> None:
    rows, labels, probabilities = (
        banking77_case["rows"],
        banking77_case["labels"],
        banking77_case["probabilities"],
    )
    texts = [row["text"] for row in rows]
    y_true_labels = [row["label"] for row in rows]
    report = classification_report(y_true_labels, probabilities, labels, texts, mistakes_count=5)
    predictions = predictions_table(list(range(len(rows))), texts, y_true_labels, probabilities, labels)
    json.dumps(report)
    json.dumps(predictions)

    y_true, y_pred, stored_probabilities = arrays_from_predictions(predictions, labels)
    n_labels = len(labels)
    # The subset lacks some of the 77 classes, so the absent-class rules are exercised.
    assert len(np.unique(y_true)) < n_labels

    for name, value in numpy_averages(y_true, y_pred, n_labels).items():
        assert report["metrics"][name] == pytest.approx(value, abs=TOLERANCE), name

    hits, true_counts, pred_counts = class_counts(y_true, y_pred, n_labels)
    for index, entry in enumerate(report["per_class"]):
        assert entry["label"] == labels[index]
        assert entry["support"] == true_counts[index]
        assert entry["predicted"] == pred_counts[index]
        expected_precision = hits[index] / pred_counts[index] if pred_counts[index] else 0.0
        expected_recall = hits[index] / true_counts[index] if true_counts[index] else 0.0
        denominator = true_counts[index] + pred_counts[index]
        assert entry["precision"] == pytest.approx(expected_precision, abs=TOLERANCE)
        assert entry["recall"] == pytest.approx(expected_recall, abs=TOLERANCE)
        assert entry["f1"] == pytest.approx(
            2 * hits[index] / denominator if denominator else 0.0, abs=TOLERANCE
        )

    counts = np.zeros((n_labels, n_labels), dtype=int)
    np.add.at(counts, (y_true, y_pred), 1)
    assert report["confusion_matrix"]["counts"] == counts.tolist()
    for index, row in enumerate(report["confusion_matrix"]["row_normalized"]):
        if true_counts[index]:
            np.testing.assert_allclose(row, counts[index] / true_counts[index], atol=TOLERANCE)
        else:
            assert row is None

    confidence = stored_probabilities.max(axis=1)
    correct = y_true == y_pred
    stats = report["confidence"]
    assert stats["mean"] == pytest.approx(confidence.mean(), abs=TOLERANCE)
    assert stats["mean_correct"] == pytest.approx(confidence[correct].mean(), abs=TOLERANCE)
    assert stats["mean_wrong"] == pytest.approx(confidence[~correct].mean(), abs=TOLERANCE)
    assert stats["share_below_threshold"] == pytest.approx(np.mean(confidence < 0.5), abs=TOLERANCE)

    edges = np.linspace(0, 1, 11)
    expected_ece = 0.0
    for index, entry in enumerate(report["calibration"]["bins"]):
        in_bin = (confidence > edges[index]) & (confidence <= edges[index + 1])
        if index == 0:
            in_bin |= confidence == 0
        assert entry["count"] == in_bin.sum()
        if in_bin.any():
            assert entry["accuracy"] == pytest.approx(correct[in_bin].mean(), abs=TOLERANCE)
            assert entry["mean_confidence"] == pytest.approx(confidence[in_bin].mean(), abs=TOLERANCE)
            expected_ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    assert report["calibration"]["ece"] == pytest.approx(expected_ece, abs=TOLERANCE)
    assert report["metrics"]["ece"] == report["calibration"]["ece"]

    present = np.unique(y_true)
    roc_aucs, average_precisions = [], []
    for index in present:
        is_class = y_true == index
        scores = stored_probabilities[:, index]
        roc_aucs.append(numpy_roc_auc(scores[is_class], scores[~is_class]))
        average_precisions.append(numpy_average_precision(is_class, scores))
    assert report["metrics"]["roc_auc"] == pytest.approx(np.mean(roc_aucs), abs=TOLERANCE)
    assert report["metrics"]["pr_auc"] == pytest.approx(np.mean(average_precisions), abs=TOLERANCE)
    assert set(report["ranking"]["skipped_classes"]) == {
        labels[i] for i in range(n_labels) if i not in present
    }
    assert "skipped" in report["ranking"]["note"]

    word_counts = np.array([len(text.split()) for text in texts])
    bucket_bounds = {
        "0-5 words": (0, 5),
        "6-10 words": (6, 10),
        "11-20 words": (11, 20),
        "21-50 words": (21, 50),
    }
    assert sum(entry["rows"] for entry in report["slices"]) == len(rows)
    for entry in report["slices"]:
        low, high = bucket_bounds.get(entry["bucket"], (51, 10**9))
        in_bucket = (word_counts >= low) & (word_counts <= high)
        assert entry["rows"] == in_bucket.sum()
        expected = numpy_averages(y_true[in_bucket], y_pred[in_bucket], n_labels)
        assert entry["accuracy"] == pytest.approx(expected["accuracy"], abs=TOLERANCE)
        assert entry["f1_macro"] == pytest.approx(expected["f1_macro"], abs=TOLERANCE)
        assert entry["mean_confidence"] == pytest.approx(confidence[in_bucket].mean(), abs=TOLERANCE)

    wrong = np.flatnonzero(~correct)
    expected_rows = wrong[np.argsort(-confidence[wrong], kind="stable")][:5]
    assert [entry["row_id"] for entry in report["mistakes"]] == expected_rows.tolist()
    for entry, row in zip(report["mistakes"], expected_rows, strict=True):
        top_two = np.sort(stored_probabilities[row])[::-1][:2]
        assert entry["text"] == texts[row]
        assert entry["true_label"] == labels[y_true[row]]
        assert entry["predicted_label"] == labels[y_pred[row]] != entry["true_label"]
        assert entry["top2_gap"] == pytest.approx(top_two[0] - top_two[1], abs=TOLERANCE)


def test_sms_spam_majority_baseline_has_high_accuracy_and_low_macro_f1() -> None:
    train_labels = [row["label"] for row in read_rows("sms_spam", "train")]
    test_rows = read_rows("sms_spam", "test")
    labels = ["ham", "spam"]
    probabilities = majority_baseline_probabilities(train_labels, labels, len(test_rows))
    texts = [row["text"] for row in test_rows]
    y_true_labels = [row["label"] for row in test_rows]
    report = classification_report(y_true_labels, probabilities, labels, texts, positive_label="spam")
    predictions = predictions_table(list(range(len(texts))), texts, y_true_labels, probabilities, labels)

    y_true = np.array([entry["true_label"] == "spam" for entry in predictions])
    y_pred = np.array([entry["predicted_label"] == "spam" for entry in predictions])
    assert not y_pred.any(), "the majority class of sms_spam train is ham"
    accuracy = np.mean(y_true == y_pred)
    f1_ham = 2 * np.sum(~y_true & ~y_pred) / (np.sum(~y_true) + np.sum(~y_pred))
    f1_spam = 2 * np.sum(y_true & y_pred) / (np.sum(y_true) + np.sum(y_pred))
    assert report["metrics"]["accuracy"] == pytest.approx(accuracy, abs=TOLERANCE)
    assert report["metrics"]["f1_macro"] == pytest.approx((f1_ham + f1_spam) / 2, abs=TOLERANCE)
    # The trap a majority baseline sets on imbalanced data: accuracy looks good, macro F1 does not.
    assert report["metrics"]["accuracy"] > 0.8
    assert report["metrics"]["f1_macro"] < 0.5
    # Constant scores rank nothing: AUC is exactly chance.
    assert report["metrics"]["roc_auc"] == pytest.approx(0.5)
    assert report["ranking"]["positive_label"] == "spam"


def test_binary_auc_uses_the_named_positive_label() -> None:
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    y_true = ["ham", "ham", "spam", "spam"]
    texts = ["a", "b", "c", "d"]
    for_spam = classification_report(y_true, probabilities, ["ham", "spam"], texts, positive_label="spam")
    for_ham = classification_report(y_true, probabilities, ["ham", "spam"], texts, positive_label="ham")
    assert for_spam["metrics"]["roc_auc"] == pytest.approx(1.0)
    assert for_ham["metrics"]["roc_auc"] == pytest.approx(1.0)
    assert for_spam["metrics"]["pr_auc"] == pytest.approx(1.0)
    assert for_ham["ranking"]["positive_label"] == "ham"


def test_a_test_label_unknown_to_the_model_is_named() -> None:
    with pytest.raises(ValueError, match="refund_request"):
        classification_report(["ham", "refund_request"], np.full((2, 2), 0.5), ["ham", "spam"], ["a", "b"])


def test_probabilities_of_the_wrong_shape_are_refused() -> None:
    with pytest.raises(ValueError, match="expected \\(2, 2\\)"):
        classification_report(["ham", "spam"], np.full((2, 3), 1 / 3), ["ham", "spam"], ["a", "b"])
