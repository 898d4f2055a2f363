"""The answer a served classifier gives for one text, shared by local serving and the app client."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Prediction:
    label: str
    # Softmax probability of every label, keyed by label name.
    scores: dict[str, float]


def predictions_from_logits(logits: np.ndarray, labels: Sequence[str]) -> list[Prediction]:
    """Softmax each row of logits over the labels and pick the most probable one."""
    if logits.ndim != 2 or logits.shape[1] != len(labels):
        raise ValueError(f"logits of shape {logits.shape} do not fit {len(labels)} labels")
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    return [
        Prediction(
            label=labels[int(row.argmax())],
            scores={label: float(score) for label, score in zip(labels, row, strict=True)},
        )
        for row in probabilities
    ]
