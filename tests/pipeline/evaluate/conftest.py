"""Fixtures for the evaluate tests: real test rows from ../shared/datasets, tiny classifiers, and
synthetic but realistic probabilities for a banking77 subset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tests.support.datasets import read_rows, sample_rows
from tests.support.tiny_models import build_tiny_classifier


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


def train_tiny_classifier(
    model_dir: Path, rows: list[dict[str, Any]], epochs: int = 4, batch_size: int = 32, seed: int = 0
) -> list[dict[str, Any]]:
    """Fit the tiny classifier in `model_dir` on `rows` for a few epochs, in place, so that the
    evaluation has a model that learned something; return its training metric points."""
    # One thread: on the shared 2-core CI machine a model this small trains ~10x faster without
    # thread contention than with torch's default of one thread per core.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(model_dir, rows, epochs, batch_size, seed)
    finally:
        torch.set_num_threads(threads)


def _fit(
    model_dir: Path, rows: list[dict[str, Any]], epochs: int, batch_size: int, seed: int
) -> list[dict[str, Any]]:
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    label2id = model.config.label2id
    model.train()
    points: list[dict[str, Any]] = []
    step = 0
    for epoch in range(epochs):
        order = np.random.default_rng(seed + epoch).permutation(len(rows))
        for start in range(0, len(rows), batch_size):
            batch = [rows[i] for i in order[start : start + batch_size]]
            inputs = tokenizer(
                [row["text"] for row in batch],
                truncation=True,
                max_length=64,
                padding=True,
                return_tensors="pt",
            )
            targets = torch.tensor([label2id[row["label"]] for row in batch])
            loss = model(**inputs, labels=targets).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            points.append(
                {"step": step, "epoch": epoch + start / len(rows), "name": "loss", "value": loss.item()}
            )
        points.append({"step": step, "epoch": epoch + 1, "name": "learning_rate", "value": 3e-3})
    model.eval()
    model.save_pretrained(model_dir)
    return points


@pytest.fixture(scope="session")
def trained_sms_classifier(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny BERT fitted on 600 sms_spam training rows, 300 test rows, and its training curve."""
    train_rows = sample_rows("sms_spam", "train", 600, seed=3)
    test_rows = sample_rows("sms_spam", "test", 300, seed=4)
    texts = [row["text"] for row in train_rows + test_rows]
    model_dir = build_tiny_classifier(tmp_path_factory.mktemp("sms-classifier"), texts, ["ham", "spam"])
    metric_points = train_tiny_classifier(model_dir, train_rows)
    return {
        "model_dir": model_dir,
        "train_rows": train_rows,
        "test_rows": test_rows,
        "metric_points": metric_points,
    }
