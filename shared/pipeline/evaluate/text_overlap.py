"""Overlap metrics between generated answers and references: BLEU, ROUGE, exact match, token F1.

BLEU is sacrebleu's corpus BLEU and ROUGE is rouge-score's (F-measure, stemmed), averaged over rows.
Exact match and token F1 follow the SQuAD convention: lower-case, drop punctuation and English
articles, collapse whitespace, then compare (token F1 on the bag of remaining words).
"""

from __future__ import annotations

import re
import string
from collections import Counter

import sacrebleu
from rouge_score import rouge_scorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    without_articles = _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION))
    return " ".join(without_articles.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    predicted_tokens = normalize_answer(prediction).split()
    reference_tokens = normalize_answer(reference).split()
    if not predicted_tokens or not reference_tokens:
        # Two empty answers agree; one empty answer shares nothing with a non-empty one.
        return float(predicted_tokens == reference_tokens)
    shared = sum((Counter(predicted_tokens) & Counter(reference_tokens)).values())
    if shared == 0:
        return 0.0
    precision = shared / len(predicted_tokens)
    recall = shared / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


def overlap_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU (0-100) and row-averaged ROUGE-1/2/L F, exact match and token F1 (0-1)."""
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise ValueError("no generated answers to score")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    rouge_totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        scores = scorer.score(reference, prediction)
        for rouge_type in ROUGE_TYPES:
            rouge_totals[rouge_type] += scores[rouge_type].fmeasure
    rows = len(predictions)
    return {
        "bleu": float(sacrebleu.corpus_bleu(predictions, [references]).score),
        **{rouge_type: total / rows for rouge_type, total in rouge_totals.items()},
        "exact_match": sum(map(exact_match, predictions, references)) / rows,
        "token_f1": sum(map(token_f1, predictions, references)) / rows,
    }
