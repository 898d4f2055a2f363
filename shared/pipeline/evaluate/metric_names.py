"""The metrics a job's evaluation summary carries, per task family, and which way each is better.

One place for these names: the evaluate stage summarizes with them, the promotion gate and the
studies accept them, the significance tests bootstrap them. Kept free of numpy and torch so that
the API can check a spec with them.
"""

from __future__ import annotations

from typing import Final

CLASSIFICATION_AVERAGES: Final = ("macro", "weighted", "micro")
CLASSIFICATION_SUMMARY_METRICS: Final = (
    "accuracy",
    *(f"{kind}_{average}" for average in CLASSIFICATION_AVERAGES for kind in ("precision", "recall", "f1")),
    "roc_auc",
    "pr_auc",
    "ece",
)
# Classification metrics with a paired bootstrap interval (and McNemar's test for accuracy).
CLASSIFICATION_BOOTSTRAP_METRICS: Final = (
    "accuracy",
    "f1_macro",
    "f1_weighted",
    "precision_macro",
    "recall_macro",
)

# Generation: perplexity on the answer tokens of every row; overlap metrics of greedy answers on a
# bounded sample. All of them carry a paired bootstrap interval against the baseline.
GENERATION_SUMMARY_METRICS: Final = (
    "perplexity",
    "mean_answer_nll",
    "bleu",
    "rouge1",
    "rouge2",
    "rougeL",
    "exact_match",
    "token_f1",
)
GENERATION_BOOTSTRAP_METRICS: Final = GENERATION_SUMMARY_METRICS

# Every other summary metric is better when higher.
LOWER_IS_BETTER: Final = frozenset({"ece", "perplexity", "mean_answer_nll"})

SUMMARY_METRICS_BY_TASK: Final[dict[str, tuple[str, ...]]] = {
    "text-classification": CLASSIFICATION_SUMMARY_METRICS,
    "causal-lm": GENERATION_SUMMARY_METRICS,
}
BOOTSTRAP_METRICS_BY_TASK: Final[dict[str, tuple[str, ...]]] = {
    "text-classification": CLASSIFICATION_BOOTSTRAP_METRICS,
    "causal-lm": GENERATION_BOOTSTRAP_METRICS,
}
ALL_SUMMARY_METRICS: Final = (*CLASSIFICATION_SUMMARY_METRICS, *GENERATION_SUMMARY_METRICS)
ALL_BOOTSTRAP_METRICS: Final = (*CLASSIFICATION_BOOTSTRAP_METRICS, *GENERATION_BOOTSTRAP_METRICS)
