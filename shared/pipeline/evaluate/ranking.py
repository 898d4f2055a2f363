"""ROC-AUC and PR-AUC: how well the probabilities rank the right class above the others.

Binary tasks score the positive label's probability. Multi-class tasks score each class one against
the rest and average (macro); a class absent from the true labels has no positives, so its AUC is
undefined: it is skipped and named in the report rather than counted as 0 or 0.5.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def ranking_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, labels: list[str], positive_label: str | None = None
) -> dict[str, Any]:
    """AUCs from class indices `y_true` and probabilities (rows, labels). PR-AUC is average precision."""
    if len(labels) == 2:
        positive = labels.index(positive_label) if positive_label is not None else 1
        is_positive = y_true == positive
        if is_positive.all() or not is_positive.any():
            return _undefined("binary AUC needs both classes in the true labels; only one is present")
        return {
            "method": "binary",
            "positive_label": labels[positive],
            "roc_auc": float(roc_auc_score(is_positive, probabilities[:, positive])),
            "pr_auc": float(average_precision_score(is_positive, probabilities[:, positive])),
            "per_class": {},
            "skipped_classes": [],
            "note": None,
        }
    present = np.unique(y_true)
    if len(present) < 2:
        return _undefined("one-vs-rest AUC needs at least two classes in the true labels")
    per_class: dict[str, dict[str, float]] = {}
    for index in present:
        is_class = y_true == index
        per_class[labels[index]] = {
            "roc_auc": float(roc_auc_score(is_class, probabilities[:, index])),
            "pr_auc": float(average_precision_score(is_class, probabilities[:, index])),
        }
    present_set = set(present.tolist())
    skipped = [label for index, label in enumerate(labels) if index not in present_set]
    note = (
        f"one-vs-rest macro over {len(present)} of {len(labels)} classes; skipped "
        f"{len(skipped)} classes absent from the true labels"
        if skipped
        else f"one-vs-rest macro over all {len(labels)} classes"
    )
    return {
        "method": "one-vs-rest macro",
        "positive_label": None,
        "roc_auc": float(np.mean([scores["roc_auc"] for scores in per_class.values()])),
        "pr_auc": float(np.mean([scores["pr_auc"] for scores in per_class.values()])),
        "per_class": per_class,
        "skipped_classes": skipped,
        "note": note,
    }


def _undefined(reason: str) -> dict[str, Any]:
    return {
        "method": None,
        "positive_label": None,
        "roc_auc": None,
        "pr_auc": None,
        "per_class": {},
        "skipped_classes": [],
        "note": reason,
    }
