"""Paired bootstrap confidence intervals and McNemar's test, for comparing two classifiers.

The bootstrap is vectorized: all resamples are drawn as one (resamples, rows) index matrix and the
per-class counts of every resample come from one bincount, so 1000 resamples of a few thousand rows
take milliseconds. Both classifiers are scored on the same resampled rows (paired), which is what
makes the interval of their difference narrow enough to mean something.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import binomtest, chi2

from shared.pipeline.evaluate.metric_names import CLASSIFICATION_BOOTSTRAP_METRICS

# The classification metrics this module resamples (the generation ones are in generation_evaluation).
BOOTSTRAP_METRICS = CLASSIFICATION_BOOTSTRAP_METRICS
# Below this many discordant pairs the chi-square approximation is poor; use the exact binomial test.
MCNEMAR_EXACT_BELOW = 25


@dataclass(frozen=True)
class ConfidenceInterval:
    estimate: float
    low: float
    high: float
    confidence: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def resampled_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, n_labels: int, resample_rows: np.ndarray
) -> dict[str, np.ndarray]:
    """BOOTSTRAP_METRICS for each resample; `resample_rows` has shape (resamples, rows).

    Averages run over the classes that occur as a true or predicted label within each resample, the
    same rule as the report's point estimates.
    """
    resamples, rows = resample_rows.shape
    offsets = (np.arange(resamples) * n_labels)[:, None]
    true_in_sample = y_true[resample_rows]
    pred_in_sample = y_pred[resample_rows]
    correct = true_in_sample == pred_in_sample
    size = resamples * n_labels
    true_counts = np.bincount((offsets + true_in_sample).ravel(), minlength=size).reshape(resamples, n_labels)
    pred_counts = np.bincount((offsets + pred_in_sample).ravel(), minlength=size).reshape(resamples, n_labels)
    hits = np.bincount((offsets + true_in_sample)[correct], minlength=size).reshape(resamples, n_labels)
    present = (true_counts + pred_counts) > 0
    precision = np.divide(hits, pred_counts, out=np.zeros(hits.shape), where=pred_counts > 0)
    recall = np.divide(hits, true_counts, out=np.zeros(hits.shape), where=true_counts > 0)
    f1 = np.divide(2 * hits, true_counts + pred_counts, out=np.zeros(hits.shape), where=present)
    classes_present = present.sum(axis=1)
    return {
        "accuracy": correct.mean(axis=1),
        "f1_macro": (f1 * present).sum(axis=1) / classes_present,
        "f1_weighted": (f1 * true_counts).sum(axis=1) / rows,
        "precision_macro": (precision * present).sum(axis=1) / classes_present,
        "recall_macro": (recall * present).sum(axis=1) / classes_present,
    }


def bootstrap_resamples(rows: int, n_resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, rows, size=(n_resamples, rows))


def percentile_interval(estimate: float, samples: np.ndarray, confidence: float) -> ConfidenceInterval:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return ConfidenceInterval(
        estimate=float(estimate), low=float(low), high=float(high), confidence=confidence
    )


def bootstrap_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_labels: int,
    metric: str = "accuracy",
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> ConfidenceInterval:
    """Percentile bootstrap interval of one metric of one classifier (class indices in, seeded)."""
    if metric not in BOOTSTRAP_METRICS:
        raise ValueError(f"unknown bootstrap metric {metric!r}; choose from {BOOTSTRAP_METRICS}")
    every_row = np.arange(len(y_true))[None, :]
    estimate = resampled_metrics(y_true, y_pred, n_labels, every_row)[metric][0]
    resamples = bootstrap_resamples(len(y_true), n_resamples, seed)
    samples = resampled_metrics(y_true, y_pred, n_labels, resamples)[metric]
    return percentile_interval(estimate, samples, confidence)


def paired_bootstrap(
    y_true: np.ndarray,
    candidate_pred: np.ndarray,
    baseline_pred: np.ndarray,
    n_labels: int,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, dict[str, ConfidenceInterval]]:
    """For each BOOTSTRAP_METRIC: intervals of the candidate, the baseline and their difference."""
    every_row = np.arange(len(y_true))[None, :]
    resamples = bootstrap_resamples(len(y_true), n_resamples, seed)
    candidate_point = resampled_metrics(y_true, candidate_pred, n_labels, every_row)
    baseline_point = resampled_metrics(y_true, baseline_pred, n_labels, every_row)
    candidate_samples = resampled_metrics(y_true, candidate_pred, n_labels, resamples)
    baseline_samples = resampled_metrics(y_true, baseline_pred, n_labels, resamples)
    return {
        metric: {
            "candidate": percentile_interval(
                candidate_point[metric][0], candidate_samples[metric], confidence
            ),
            "baseline": percentile_interval(baseline_point[metric][0], baseline_samples[metric], confidence),
            "delta": percentile_interval(
                candidate_point[metric][0] - baseline_point[metric][0],
                candidate_samples[metric] - baseline_samples[metric],
                confidence,
            ),
        }
        for metric in BOOTSTRAP_METRICS
    }


def mcnemar(candidate_correct: np.ndarray, baseline_correct: np.ndarray) -> dict[str, float | int | str]:
    """McNemar's test on the rows where exactly one of the two classifiers is right.

    Exact two-sided binomial test below MCNEMAR_EXACT_BELOW discordant rows, chi-square with
    continuity correction otherwise.
    """
    only_candidate = int((candidate_correct & ~baseline_correct).sum())
    only_baseline = int((~candidate_correct & baseline_correct).sum())
    discordant = only_candidate + only_baseline
    if discordant == 0:
        method, statistic, p_value = "no discordant rows", 0.0, 1.0
    elif discordant < MCNEMAR_EXACT_BELOW:
        method = "exact binomial"
        statistic = float(min(only_candidate, only_baseline))
        p_value = float(binomtest(min(only_candidate, only_baseline), discordant, 0.5).pvalue)
    else:
        method = "chi-square with continuity correction"
        statistic = (abs(only_candidate - only_baseline) - 1) ** 2 / discordant
        p_value = float(chi2.sf(statistic, df=1))
    return {
        "only_candidate_correct": only_candidate,
        "only_baseline_correct": only_baseline,
        "method": method,
        "statistic": float(statistic),
        "p_value": p_value,
    }
