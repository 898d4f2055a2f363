"""Baselines and the side-by-side comparison of a candidate model with one.

A baseline is any set of probabilities on the same test rows: the majority class of the training
labels, or another model's predictions (the production version, an earlier version).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from shared.pipeline.evaluate.classification import check_probabilities, encode_labels, summary_metrics
from shared.pipeline.evaluate.metric_names import LOWER_IS_BETTER
from shared.pipeline.evaluate.significance import mcnemar, paired_bootstrap


def majority_label(train_labels: list[str], labels: list[str]) -> str:
    """The most frequent training label; a tie goes to the label with the lower class index."""
    counts = Counter(train_labels)
    if not counts:
        raise ValueError("the majority-class baseline needs at least one training label")
    known = [label for label in labels if label in counts]
    if not known:
        raise ValueError(f"none of the training labels {sorted(counts)[:10]} is known to the model")
    return max(known, key=lambda label: (counts[label], -labels.index(label)))


def majority_baseline_probabilities(train_labels: list[str], labels: list[str], rows: int) -> np.ndarray:
    """Probability 1 on the majority training label for every test row."""
    probabilities = np.zeros((rows, len(labels)), dtype=np.float64)
    probabilities[:, labels.index(majority_label(train_labels, labels))] = 1.0
    return probabilities


def compare(
    y_true: list[str],
    candidate_probabilities: np.ndarray,
    baseline_probabilities: np.ndarray,
    labels: list[str],
    *,
    baseline_name: str = "baseline",
    positive_label: str | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Both sides' metrics on the same rows, deltas (candidate - baseline), paired bootstrap
    intervals and McNemar's test on per-row correctness."""
    true_index = encode_labels(y_true, labels)
    check_probabilities(candidate_probabilities, len(true_index), labels)
    check_probabilities(baseline_probabilities, len(true_index), labels)
    candidate_pred = candidate_probabilities.argmax(axis=1)
    baseline_pred = baseline_probabilities.argmax(axis=1)
    candidate_metrics = summary_metrics(true_index, candidate_probabilities, labels, positive_label)
    baseline_metrics = summary_metrics(true_index, baseline_probabilities, labels, positive_label)
    intervals = paired_bootstrap(
        true_index, candidate_pred, baseline_pred, len(labels), n_resamples, seed, confidence
    )
    metrics = {}
    for name, candidate_value in candidate_metrics.items():
        baseline_value = baseline_metrics[name]
        delta = (
            None if candidate_value is None or baseline_value is None else candidate_value - baseline_value
        )
        metrics[name] = {
            "candidate": candidate_value,
            "baseline": baseline_value,
            "delta": delta,
            "higher_is_better": name not in LOWER_IS_BETTER,
            "delta_interval": intervals[name]["delta"].as_dict() if name in intervals else None,
            "candidate_interval": intervals[name]["candidate"].as_dict() if name in intervals else None,
            "baseline_interval": intervals[name]["baseline"].as_dict() if name in intervals else None,
        }
    return {
        "baseline": baseline_name,
        "rows": len(true_index),
        "bootstrap": {
            "resamples": n_resamples,
            "seed": seed,
            "confidence": confidence,
            "method": "paired percentile",
        },
        "metrics": metrics,
        "mcnemar": mcnemar(candidate_pred == true_index, baseline_pred == true_index),
        "prediction_agreement": float((candidate_pred == baseline_pred).mean()) if len(true_index) else None,
    }


def probabilities_from_labels(predicted_labels: list[str], labels: list[str]) -> np.ndarray:
    """One-hot probabilities for a baseline known only by its predicted labels."""
    predicted_index = encode_labels(predicted_labels, labels)
    probabilities = np.zeros((len(predicted_index), len(labels)), dtype=np.float64)
    probabilities[np.arange(len(predicted_index)), predicted_index] = 1.0
    return probabilities
