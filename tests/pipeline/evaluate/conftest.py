"""Fixtures for the evaluate tests: real test rows from ../shared/datasets, tiny classifiers, and
synthetic but realistic probabilities for a banking77 subset."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tests.support.tiny_models import build_tiny_bert

DATASETS_DIR = Path(__file__).resolve().parents[3] / ".." / "shared" / "datasets"


def read_rows(dataset: str, split: str) -> list[dict[str, Any]]:
    path = DATASETS_DIR / dataset / f"{split}.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def sample_rows(dataset: str, split: str, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """`count` rows drawn after a seeded shuffle (several datasets are sorted by label)."""
    rows = read_rows(dataset, split)
    random.Random(seed).shuffle(rows)
    return rows[:count]


def build_tiny_classifier(directory: Path, texts: list[str], labels: list[str], seed: int = 0) -> Path:
    """A tiny random BERT with a classification head over `labels`, saved with its tokenizer."""
    base = build_tiny_bert(directory / "base", texts, seed=seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
    )
    classifier_dir = directory / "classifier"
    model.save_pretrained(classifier_dir)
    AutoTokenizer.from_pretrained(base).save_pretrained(classifier_dir)
    return classifier_dir


@pytest.fixture(scope="session")
def banking77_case() -> dict[str, Any]:
    """400 shuffled banking77 test rows, all 77 training labels, and probabilities that look like a
    half-trained model's: the true class usually, not always, gets the largest logit."""
    labels = sorted({row["label"] for row in read_rows("banking77", "train")})
    rows = sample_rows("banking77", "test", 400, seed=1)
    rng = np.random.default_rng(7)
    logits = rng.normal(0.0, 1.0, size=(len(rows), len(labels)))
    true_index = np.array([labels.index(row["label"]) for row in rows])
    logits[np.arange(len(rows)), true_index] += rng.normal(3.0, 1.5, size=len(rows))
    logits *= 1.4
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return {"rows": rows, "labels": labels, "probabilities": probabilities}
