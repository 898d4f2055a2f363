"""A tiny BERT classifier briefly trained on real sms_spam rows, for fast export and serving tests.

A random head gives logits a hair apart, where any rounding flips labels; a few hundred training
steps separate the classes the way a fine-tuned model does, so label agreement means something.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.datasets import sample_rows

LABELS = ["ham", "spam"]


def sms_spam_rows(split: str, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """`count` rows of the real sms_spam split, shuffled (the file is not in random order)."""
    return sample_rows("sms_spam", split, count, seed)


def train_tiny_classifier(directory: Path, steps: int = 40) -> Path:
    """Write a trained ham/spam tiny BERT (model and tokenizer) to `directory`."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tests.support.tiny_models import build_tiny_bert

    train_rows = sms_spam_rows("train", 400)
    base = build_tiny_bert(directory / "base", [row["text"] for row in train_rows])
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: index for index, label in enumerate(LABELS)},
    )
    tokenizer = AutoTokenizer.from_pretrained(base)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    model.train()
    for step in range(steps):
        batch = [train_rows[(step * 16 + offset) % len(train_rows)] for offset in range(16)]
        encoded = tokenizer(
            [row["text"] for row in batch], padding=True, truncation=True, max_length=48, return_tensors="pt"
        )
        targets = torch.tensor([LABELS.index(row["label"]) for row in batch])
        loss = model(**encoded, labels=targets).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    output = directory / "classifier"
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    return output
