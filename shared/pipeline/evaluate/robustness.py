"""Robustness: the same metrics on perturbed copies of the test rows.

Each perturbation mimics noise real users add (typos, shouting, sloppy spacing, cut-off messages).
Perturbations are seeded per (seed, kind, row), so a report can be reproduced exactly and one row's
perturbation does not depend on the rows before it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from shared.pipeline.evaluate.classification import encode_labels

PERTURBATIONS = ("typos", "casing", "whitespace", "truncation")


def add_typos(text: str, rng: random.Random, rate: float = 0.1) -> str:
    """Swap two adjacent letters in about `rate` of the words (at least one word when possible)."""
    words = text.split(" ")
    candidates = [index for index, word in enumerate(words) if len(word) >= 2]
    if not candidates:
        return text
    chosen = rng.sample(candidates, max(1, round(rate * len(candidates))))
    for index in chosen:
        word = words[index]
        position = rng.randrange(len(word) - 1)
        swapped = word[:position] + word[position + 1] + word[position] + word[position + 2 :]
        # Swapping two equal letters changes nothing; drop a letter instead so the word really changes.
        words[index] = swapped if swapped != word else word[:position] + word[position + 1 :]
    return " ".join(words)


def change_casing(text: str, rng: random.Random) -> str:
    """Upper-case or lower-case the whole text, whichever changes it (upper when both would)."""
    upper = text.upper()
    if upper != text and (rng.random() < 0.5 or text.lower() == text):
        return upper
    return text.lower()


def add_whitespace(text: str, rng: random.Random) -> str:
    """Double or triple the spaces between words and pad both ends."""
    words = text.split()
    spaced = "".join(word + " " * rng.randint(2, 3) for word in words[:-1]) + (words[-1] if words else "")
    return "  " + spaced + " \n"


def truncate(text: str, rng: random.Random, keep: float = 0.5) -> str:
    """Keep the first half of the words (at least one): a message cut off mid-way."""
    words = text.split()
    if len(words) < 2:
        return text[: max(1, len(text) // 2)]
    return " ".join(words[: max(1, int(len(words) * keep))])


_PERTURBERS: dict[str, Callable[[str, random.Random], str]] = {
    "typos": add_typos,
    "casing": change_casing,
    "whitespace": add_whitespace,
    "truncation": truncate,
}


def perturb_texts(texts: list[str], kind: str, seed: int = 0) -> list[str]:
    if kind not in _PERTURBERS:
        raise ValueError(f"unknown perturbation {kind!r}; choose from {PERTURBATIONS}")
    perturber = _PERTURBERS[kind]
    return [perturber(text, random.Random(f"{seed}:{kind}:{row}")) for row, text in enumerate(texts)]


def robustness_report(
    texts: list[str],
    y_true: list[str],
    clean_probabilities: np.ndarray,
    labels: list[str],
    predict: Callable[[list[str]], np.ndarray],
    seed: int = 0,
    kinds: tuple[str, ...] = PERTURBATIONS,
) -> dict[str, Any]:
    """Accuracy and macro F1 on each perturbed copy, the change from clean rows, and the share of
    rows whose predicted label flipped. `predict` maps texts to probabilities (rows, labels)."""
    true_index = encode_labels(y_true, labels)
    clean_pred = clean_probabilities.argmax(axis=1)
    clean_accuracy = float(accuracy_score(true_index, clean_pred))
    clean_f1 = float(f1_score(true_index, clean_pred, average="macro", zero_division=0))
    results = []
    for kind in kinds:
        perturbed_pred = predict(perturb_texts(texts, kind, seed)).argmax(axis=1)
        accuracy = float(accuracy_score(true_index, perturbed_pred))
        f1_macro = float(f1_score(true_index, perturbed_pred, average="macro", zero_division=0))
        results.append(
            {
                "perturbation": kind,
                "accuracy": accuracy,
                "accuracy_delta": accuracy - clean_accuracy,
                "f1_macro": f1_macro,
                "f1_macro_delta": f1_macro - clean_f1,
                "flipped_share": float((perturbed_pred != clean_pred).mean()) if len(texts) else None,
            }
        )
    return {
        "seed": seed,
        "clean": {"accuracy": clean_accuracy, "f1_macro": clean_f1},
        "perturbations": results,
    }
