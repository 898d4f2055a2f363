"""Tiny random models built from a config, for fast tests.

The tokenizer is a real WordPiece tokenizer over a small vocabulary, so tokenization, padding and
truncation behave as they do with a real BERT; only the weights are random and small.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from transformers import BertConfig, BertModel, BertTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_bert(
    directory: Path,
    texts: Iterable[str] = (),
    hidden_size: int = 32,
    num_layers: int = 2,
    seed: int = 0,
) -> Path:
    """Write a tiny BERT encoder and its tokenizer to `directory`; return the directory.

    The vocabulary holds the lower-cased words of `texts` plus letters and digits, so every input
    tokenizes to something other than [UNK].
    """
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    words = sorted({w for text in texts for w in re.findall(r"[a-z0-9]+", text.lower())})
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    pieces = [f"##{ch}" for ch in letters]
    punctuation = list(".,!?'\"-:;()")
    vocab = list(dict.fromkeys(SPECIAL_TOKENS + letters + pieces + punctuation + words))
    # transformers 5 builds the fast tokenizer from a vocabulary mapping (no vocab_file argument).
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(directory)

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(directory)
    return directory


def build_tiny_classifier(directory: Path, texts: list[str], labels: list[str], seed: int = 0) -> Path:
    """A tiny random BERT with a classification head over `labels`, saved with its tokenizer."""
    base = build_tiny_bert(directory / "base", texts, seed=seed)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

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
