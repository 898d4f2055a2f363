"""The classification report: every figure of the evaluation page, as JSON-able data.

Figures come from scikit-learn on class indices. Averages (macro, weighted) run over the classes
that occur in the test rows as a true or a predicted label; a class the model knows but that neither
occurs nor is predicted has no precision or recall to average. Precision of a class that is never
predicted is 0 (scikit-learn's zero_division=0), which the report states.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from shared.pipeline.evaluate.calibration import calibration_bins, confidence_statistics
from shared.pipeline.evaluate.metric_names import CLASSIFICATION_AVERAGES, CLASSIFICATION_SUMMARY_METRICS
from shared.pipeline.evaluate.ranking import ranking_metrics
from shared.pipeline.evaluate.slices import DEFAULT_LENGTH_EDGES, length_slices

AVERAGES = CLASSIFICATION_AVERAGES
SUMMARY_METRICS = CLASSIFICATION_SUMMARY_METRICS


def encode_labels(values: list[str], labels: list[str]) -> np.ndarray:
    """Class indices of `values`; a label the model does not know is an error, named."""
    index_of = {label: index for index, label in enumerate(labels)}
    unknown = sorted({value for value in values if value not in index_of})
    if unknown:
        raise ValueError(f"labels not known to the model: {unknown[:10]}; the model knows {labels[:20]}")
    return np.array([index_of[value] for value in values], dtype=np.int64)


def check_probabilities(probabilities: np.ndarray, rows: int, labels: list[str]) -> None:
    if probabilities.shape != (rows, len(labels)):
        raise ValueError(
            f"probabilities have shape {probabilities.shape}, expected ({rows}, {len(labels)}) "
            "(one row per test row, one column per label)"
        )


def evaluated_labels(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Class indices that occur as a true or a predicted label, in class-index order."""
    return np.union1d(y_true, y_pred)


def averaged_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy and precision, recall and F1 under each average, from class indices."""
    evaluated = evaluated_labels(y_true, y_pred)
    metrics = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in AVERAGES:
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=evaluated, average=average, zero_division=0
        )
        metrics.update(
            {
                f"precision_{average}": float(precision),
                f"recall_{average}": float(recall),
                f"f1_{average}": float(f1),
            }
        )
    return metrics


def summary_metrics(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    labels: list[str],
    positive_label: str | None = None,
    calibration_bin_count: int = 10,
) -> dict[str, float | None]:
    """The headline metrics (SUMMARY_METRICS) from class indices and probabilities."""
    y_pred = probabilities.argmax(axis=1)
    ranking = ranking_metrics(y_true, probabilities, labels, positive_label)
    calibration = calibration_bins(probabilities.max(axis=1), y_pred == y_true, calibration_bin_count)
    return _headline(averaged_metrics(y_true, y_pred), ranking, calibration)


def _headline(
    averages: dict[str, float], ranking: dict[str, Any], calibration: dict[str, Any]
) -> dict[str, float | None]:
    return {**averages, "roc_auc": ranking["roc_auc"], "pr_auc": ranking["pr_auc"], "ece": calibration["ece"]}


def classification_report(
    y_true: list[str],
    probabilities: np.ndarray,
    labels: list[str],
    texts: list[str],
    *,
    positive_label: str | None = None,
    row_ids: list[Any] | None = None,
    confidence_threshold: float = 0.5,
    calibration_bin_count: int = 10,
    mistakes_count: int = 10,
    length_edges: tuple[int, ...] = DEFAULT_LENGTH_EDGES,
) -> dict[str, Any]:
    """The full report for test rows: `probabilities` has one row per text, one column per label.

    Predicted label is the most probable class. `positive_label` picks the class whose probability
    the binary AUCs score (default: the label with class index 1).
    """
    true_index = encode_labels(y_true, labels)
    check_probabilities(probabilities, len(true_index), labels)
    row_ids = list(range(len(texts))) if row_ids is None else row_ids
    predicted_index = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    correct = predicted_index == true_index
    evaluated = evaluated_labels(true_index, predicted_index)

    ranking = ranking_metrics(true_index, probabilities, labels, positive_label)
    calibration = calibration_bins(confidence, correct, calibration_bin_count)
    metrics = _headline(averaged_metrics(true_index, predicted_index), ranking, calibration)
    precision, recall, f1, support = precision_recall_fscore_support(
        true_index, predicted_index, labels=np.arange(len(labels)), zero_division=0
    )
    per_class = [
        {
            "label": label,
            "precision": float(precision[index]),
            "recall": float(recall[index]),
            "f1": float(f1[index]),
            "support": int(support[index]),
            "predicted": int((predicted_index == index).sum()),
        }
        for index, label in enumerate(labels)
    ]
    counts = confusion_matrix(true_index, predicted_index, labels=np.arange(len(labels)))
    row_totals = counts.sum(axis=1, keepdims=True)
    # A class with no true rows has an undefined row share: None, not 0 (0 would read as "never right").
    row_normalized = [
        [float(value) for value in row / total] if total else None
        for row, total in zip(counts, row_totals[:, 0], strict=True)
    ]
    return {
        "rows": len(true_index),
        "labels": labels,
        "labels_evaluated": [labels[index] for index in evaluated],
        "metrics": metrics,
        "per_class": per_class,
        "confusion_matrix": {"labels": labels, "counts": counts.tolist(), "row_normalized": row_normalized},
        "confidence": confidence_statistics(confidence, correct, confidence_threshold),
        "calibration": calibration,
        "ranking": ranking,
        "mistakes": most_confident_mistakes(
            probabilities, true_index, labels, texts, row_ids, mistakes_count
        ),
        "slices": length_slices(texts, true_index, predicted_index, confidence, length_edges),
        "notes": [
            f"macro and weighted averages run over the {len(evaluated)} of {len(labels)} classes that occur "
            "as a true or predicted label",
            "precision of a class that is never predicted counts as 0",
            *([ranking["note"]] if ranking["note"] else []),
        ],
    }


def most_confident_mistakes(
    probabilities: np.ndarray,
    true_index: np.ndarray,
    labels: list[str],
    texts: list[str],
    row_ids: list[Any],
    count: int,
) -> list[dict[str, Any]]:
    """The `count` wrong predictions with the highest confidence, most confident first."""
    top_two = np.sort(probabilities, axis=1)[:, ::-1][:, :2]
    predicted_index = probabilities.argmax(axis=1)
    wrong_rows = np.flatnonzero(predicted_index != true_index)
    # Stable sort on negated confidence: ties keep test-row order, so the list is reproducible.
    ranked = wrong_rows[np.argsort(-top_two[wrong_rows, 0], kind="stable")][:count]
    return [
        {
            "row_id": row_ids[row],
            "text": texts[row],
            "true_label": labels[true_index[row]],
            "predicted_label": labels[predicted_index[row]],
            "confidence": float(top_two[row, 0]),
            "top2_gap": float(top_two[row, 0] - top_two[row, 1]) if top_two.shape[1] > 1 else None,
        }
        for row in ranked
    ]


def predictions_table(
    row_ids: list[Any],
    texts: list[str],
    y_true: list[str],
    probabilities: np.ndarray,
    labels: list[str],
    text_pairs: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Every prediction, stored so that any figure of the report can be recomputed from it."""
    check_probabilities(probabilities, len(texts), labels)
    predicted_index = probabilities.argmax(axis=1)
    table = []
    for row, row_id in enumerate(row_ids):
        entry: dict[str, Any] = {
            "row_id": row_id,
            "text": texts[row],
            "true_label": y_true[row],
            "predicted_label": labels[predicted_index[row]],
            "probabilities": {label: float(probabilities[row, index]) for index, label in enumerate(labels)},
        }
        if text_pairs is not None:
            entry["text_pair"] = text_pairs[row]
        table.append(entry)
    return table
