"""Batched classifier inference: the prediction path every evaluation figure starts from.

Rows are sorted by token length and batched with dynamic padding, so a batch of short texts is not
padded to the longest text of the test set; probabilities come back in the caller's row order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from shared.pipeline.labels import labels_from_config


@dataclass(frozen=True)
class LoadedClassifier:
    """A sequence classifier in eval mode, its tokenizer, and its label names by class index."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    labels: list[str]


def load_classifier(model_dir: Path) -> LoadedClassifier:
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return LoadedClassifier(model=model, tokenizer=tokenizer, labels=labels_from_config(model.config))


def predict_logits(
    classifier: LoadedClassifier,
    texts: list[str],
    text_pairs: list[str] | None = None,
    batch_size: int = 64,
    max_length: int = 128,
) -> np.ndarray:
    """Class logits, shape (rows, labels), rows in the order of `texts`."""
    if text_pairs is not None and len(text_pairs) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(text_pairs)} text pairs")
    if not texts:
        return np.zeros((0, len(classifier.labels)), dtype=np.float64)
    tokenizer = classifier.tokenizer
    # Tokenize once without padding to learn each row's length, then batch rows of similar length.
    encoded = tokenizer(texts, text_pairs, truncation=True, max_length=max_length)
    lengths = np.array([len(ids) for ids in encoded["input_ids"]])
    order = np.argsort(lengths, kind="stable")
    logits = np.empty((len(texts), len(classifier.labels)), dtype=np.float64)
    device = classifier.model.device
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch_rows = order[start : start + batch_size]
            features = [{key: encoded[key][row] for key in encoded} for row in batch_rows]
            batch = tokenizer.pad(features, padding=True, return_tensors="pt").to(device)
            logits[batch_rows] = classifier.model(**batch).logits.float().cpu().numpy()
    return logits


def predict_probabilities(
    classifier: LoadedClassifier,
    texts: list[str],
    text_pairs: list[str] | None = None,
    batch_size: int = 64,
    max_length: int = 128,
) -> np.ndarray:
    """Class probabilities, shape (rows, labels), rows in the order of `texts`."""
    logits = predict_logits(classifier, texts, text_pairs, batch_size, max_length)
    if not len(logits):
        return logits
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities: np.ndarray = shifted / shifted.sum(axis=1, keepdims=True)
    return probabilities


def predict_classifier(
    model_dir: Path,
    texts: list[str],
    text_pairs: list[str] | None = None,
    batch_size: int = 64,
    max_length: int = 128,
) -> np.ndarray:
    """Load the classifier saved in `model_dir` and return its probabilities for `texts`."""
    classifier = load_classifier(model_dir)
    return predict_probabilities(classifier, texts, text_pairs, batch_size, max_length)
