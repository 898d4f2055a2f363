"""Confidence statistics and calibration of a classifier's top-label probability.

scikit-learn's calibration_curve only handles a binary positive-class probability; top-label
calibration (is a 0.9-confident answer right 90% of the time?) needs the counts per bin, which is
a histogram, so it is binned here with numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def confidence_statistics(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> dict[str, Any]:
    """Mean top-label confidence overall, on correct and on wrong rows, and the share below threshold."""
    return {
        "mean": _mean_or_none(confidence),
        "mean_correct": _mean_or_none(confidence[correct]),
        "mean_wrong": _mean_or_none(confidence[~correct]),
        "threshold": threshold,
        "share_below_threshold": _mean_or_none((confidence < threshold).astype(np.float64)),
    }


def calibration_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """Expected calibration error over equal-width confidence bins, with each bin's figures.

    Bins are right-closed, (lower, upper], except the first which also holds confidence 0. ECE is
    the row-weighted mean of |accuracy - mean confidence| over non-empty bins.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_of_row = np.searchsorted(edges[1:-1], confidence, side="left")
    counts = np.bincount(bin_of_row, minlength=n_bins)
    confidence_sums = np.bincount(bin_of_row, weights=confidence, minlength=n_bins)
    correct_sums = np.bincount(bin_of_row, weights=correct.astype(np.float64), minlength=n_bins)
    bins: list[dict[str, Any]] = []
    ece = 0.0
    for index in range(n_bins):
        count = int(counts[index])
        bin_figures: dict[str, Any] = {
            "lower": float(edges[index]),
            "upper": float(edges[index + 1]),
            "count": count,
            "mean_confidence": None,
            "accuracy": None,
            "gap": None,
        }
        if count:
            mean_confidence = float(confidence_sums[index] / count)
            accuracy = float(correct_sums[index] / count)
            bin_figures.update(
                mean_confidence=mean_confidence, accuracy=accuracy, gap=accuracy - mean_confidence
            )
            ece += count / len(confidence) * abs(accuracy - mean_confidence)
        bins.append(bin_figures)
    return {"ece": float(ece) if len(confidence) else None, "n_bins": n_bins, "bins": bins}


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None
