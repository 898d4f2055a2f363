"""Metrics by input-length bucket: does the model get worse on very short or very long inputs?

Length is counted in whitespace-separated words so that buckets read the same for every model
(token counts depend on the tokenizer). Macro F1 inside a bucket averages over the classes that
occur in that bucket (as true or predicted labels): a small bucket holds few classes, and counting
the absent ones as 0 would say nothing about the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

DEFAULT_LENGTH_EDGES: tuple[int, ...] = (5, 10, 20, 50)


def word_counts(texts: list[str]) -> np.ndarray:
    return np.array([len(text.split()) for text in texts], dtype=np.int64)


def length_slices(
    texts: list[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    confidence: np.ndarray,
    edges: tuple[int, ...] = DEFAULT_LENGTH_EDGES,
) -> list[dict[str, Any]]:
    """One entry per non-empty bucket: words 0..e0, e0+1..e1, ..., above the last edge."""
    if list(edges) != sorted(set(edges)) or (edges and edges[0] < 0):
        raise ValueError(f"length bucket edges must be increasing non-negative integers, got {edges}")
    counts = word_counts(texts)
    bucket_of_row = np.searchsorted(np.array(edges), counts, side="left")
    lower_bounds = [0, *(edge + 1 for edge in edges)]
    upper_bounds: list[int | None] = [*edges, None]
    slices: list[dict[str, Any]] = []
    for bucket, (lower, upper) in enumerate(zip(lower_bounds, upper_bounds, strict=True)):
        rows = bucket_of_row == bucket
        if not rows.any():
            continue
        slices.append(
            {
                "bucket": f"{lower}-{upper} words" if upper is not None else f"{lower}+ words",
                "min_words": lower,
                "max_words": upper,
                "rows": int(rows.sum()),
                "accuracy": float(accuracy_score(y_true[rows], y_pred[rows])),
                "f1_macro": float(f1_score(y_true[rows], y_pred[rows], average="macro", zero_division=0)),
                "mean_confidence": float(confidence[rows].mean()),
            }
        )
    return slices
