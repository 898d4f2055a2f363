"""The evaluate step for instruction-tuned causal LMs: the one call the worker makes.

Both models (the fine-tuned one and the baseline: the base model, or another job's) read the same
prompts rendered with the same chat template (the fine-tuned model's, stored with it) and decode the
same way. Perplexity is compared on every row; the overlap metrics on the greedy answers of a
bounded sample. Each delta has a paired bootstrap interval (both models rescored on the same
resampled rows), and a Wilcoxon signed-rank test on per-row answer loss says whether the fine-tuned
model is better than chance would make it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sacrebleu
from rouge_score import rouge_scorer
from scipy.stats import wilcoxon
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from shared.pipeline.evaluate.gate import GateResult, GateSpec, evaluate_gate
from shared.pipeline.evaluate.generation import (
    Conversation,
    GenerationOptions,
    ModelScores,
    overlap_of,
    score_model,
)
from shared.pipeline.evaluate.generation_html import render_generation_report
from shared.pipeline.evaluate.metric_names import GENERATION_SUMMARY_METRICS, LOWER_IS_BETTER
from shared.pipeline.evaluate.significance import bootstrap_resamples, percentile_interval
from shared.pipeline.evaluate.text_overlap import ROUGE_TYPES, exact_match, token_f1

# Per-row overlap metrics (means over rows); BLEU is a corpus metric and is resampled whole.
_ROW_METRICS = (*ROUGE_TYPES, "exact_match", "token_f1")


@dataclass(frozen=True)
class GenerationEvaluation:
    report: dict[str, Any]
    # One entry per row: the prompt, the reference, both models' answers (where generated) and losses.
    outputs: list[dict[str, Any]]
    html: str
    gate: GateResult | None


def evaluate_generation(
    model_dir: Path,
    conversations: Sequence[Conversation],
    *,
    baseline_dir: Path,
    baseline_name: str,
    gate: GateSpec | None = None,
    metric_points: list[dict[str, Any]] | None = None,
    options: GenerationOptions | None = None,
    title: str = "Evaluation report",
) -> GenerationEvaluation:
    """Evaluate the fine-tuned model in `model_dir` against the model in `baseline_dir`."""
    options = options or GenerationOptions()
    if not conversations:
        raise ValueError("no conversations to evaluate")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    generated_rows = list(range(min(options.max_generations, len(conversations))))
    candidate_model = _load(model_dir)
    baseline_model = _load(baseline_dir)
    if baseline_model.config.vocab_size != candidate_model.config.vocab_size:
        raise ValueError(
            f"the baseline's vocabulary ({baseline_model.config.vocab_size}) is not the model's "
            f"({candidate_model.config.vocab_size}); their answer likelihoods cannot be compared"
        )
    candidate = score_model(candidate_model, tokenizer, conversations, generated_rows, options)
    del candidate_model
    baseline = score_model(baseline_model, tokenizer, conversations, generated_rows, options)
    del baseline_model

    references = [conversation[-1]["content"].strip() for conversation in conversations]
    sample_references = [references[row] for row in generated_rows]
    metrics = summary_metrics(candidate, sample_references)
    comparison = compare(candidate, baseline, sample_references, baseline_name, options)
    report: dict[str, Any] = {
        "task": "causal-lm",
        "rows": len(conversations),
        "generated_rows": len(generated_rows),
        "metrics": metrics,
        "baseline_comparison": comparison,
        "answer_tokens": int(candidate.tokens.sum()),
        "settings": {
            "max_new_tokens": options.max_new_tokens,
            "max_length": options.max_length,
            "decoding": "greedy",
            "chat_template": "the fine-tuned model's, for both models",
        },
        "notes": [
            "perplexity is exp of the mean negative log-likelihood over all answer tokens (end-of-turn "
            "token included), prompt tokens excluded",
            "BLEU is sacrebleu corpus BLEU (0-100); ROUGE, exact match and token F1 are row means (0-1), "
            f"on the first {len(generated_rows)} rows' greedy answers",
        ],
    }
    gate_result = evaluate_gate(gate, metrics, comparison) if gate is not None else None
    report["gate"] = {"spec": gate.model_dump(), **gate_result.as_dict()} if gate and gate_result else None
    outputs = _outputs(conversations, references, generated_rows, candidate, baseline)
    report["samples"] = [output for output in outputs if "generated" in output][: options.sample_count]
    html = render_generation_report(report, title=title, gate_result=gate_result, metric_points=metric_points)
    return GenerationEvaluation(report=report, outputs=outputs, html=html, gate=gate_result)


def summary_metrics(scores: ModelScores, references: Sequence[str]) -> dict[str, float | None]:
    values: dict[str, float | None] = {
        "perplexity": scores.perplexity,
        "mean_answer_nll": float(scores.nll.sum() / scores.tokens.sum()),
        **overlap_of(scores.generations, references),
    }
    return {name: values[name] for name in GENERATION_SUMMARY_METRICS}


def compare(
    candidate: ModelScores,
    baseline: ModelScores,
    references: Sequence[str],
    baseline_name: str,
    options: GenerationOptions,
) -> dict[str, Any]:
    """Both models on the same rows: each summary metric, the delta, and paired bootstrap intervals."""
    rows = len(candidate.nll)
    resamples = bootstrap_resamples(rows, options.bootstrap_resamples, options.seed)
    sampled = bootstrap_resamples(len(references), options.bootstrap_resamples, options.seed + 1)
    samples_c = _resampled(candidate, references, resamples, sampled)
    samples_b = _resampled(baseline, references, resamples, sampled)
    point_c = summary_metrics(candidate, references)
    point_b = summary_metrics(baseline, references)
    metrics: dict[str, Any] = {}
    for name in GENERATION_SUMMARY_METRICS:
        c, b = point_c[name], point_b[name]
        assert c is not None and b is not None
        metrics[name] = {
            "candidate": c,
            "baseline": b,
            "delta": c - b,
            "higher_is_better": name not in LOWER_IS_BETTER,
            "delta_interval": percentile_interval(
                c - b, samples_c[name] - samples_b[name], options.confidence
            ).as_dict(),
            "candidate_interval": percentile_interval(c, samples_c[name], options.confidence).as_dict(),
            "baseline_interval": percentile_interval(b, samples_b[name], options.confidence).as_dict(),
        }
    return {
        "baseline": baseline_name,
        "rows": rows,
        "generated_rows": len(references),
        "metrics": metrics,
        "significance": answer_loss_test(candidate, baseline),
        "bootstrap": {
            "resamples": options.bootstrap_resamples,
            "confidence": options.confidence,
            "seed": options.seed,
        },
        "answer_agreement": float(
            np.mean([a == b for a, b in zip(candidate.generations, baseline.generations, strict=True)])
        )
        if references
        else None,
    }


def answer_loss_test(candidate: ModelScores, baseline: ModelScores) -> dict[str, Any]:
    """Wilcoxon signed-rank test of per-row mean answer loss: is the candidate's lower by more than chance?"""
    candidate_loss = candidate.nll / candidate.tokens
    baseline_loss = baseline.nll / baseline.tokens
    differences = candidate_loss - baseline_loss
    if not np.any(differences):
        return {
            "method": "wilcoxon signed-rank on per-row answer loss",
            "p_value": 1.0,
            "rows": len(differences),
        }
    result = wilcoxon(candidate_loss, baseline_loss, alternative="less", zero_method="wilcox")
    return {
        "method": "wilcoxon signed-rank on per-row answer loss (one-sided: candidate lower)",
        "statistic": float(result.statistic),
        "p_value": float(result.pvalue),
        "rows": len(differences),
        "rows_candidate_better": int((differences < 0).sum()),
        "rows_baseline_better": int((differences > 0).sum()),
    }


def _resampled(
    scores: ModelScores, references: Sequence[str], resamples: np.ndarray, sampled: np.ndarray
) -> dict[str, np.ndarray]:
    """Each summary metric on every resample: rows for perplexity, generated rows for the rest."""
    nll = scores.nll[resamples].sum(axis=1)
    tokens = scores.tokens[resamples].sum(axis=1)
    values: dict[str, np.ndarray] = {"mean_answer_nll": nll / tokens}
    values["perplexity"] = np.exp(values["mean_answer_nll"])
    per_row = _row_metrics(scores.generations, references)
    for name in _ROW_METRICS:
        values[name] = per_row[name][sampled].mean(axis=1)
    generations = np.array(scores.generations, dtype=object)
    reference_array = np.array(references, dtype=object)
    values["bleu"] = np.array(
        [
            sacrebleu.corpus_bleu(list(generations[rows]), [list(reference_array[rows])]).score
            for rows in sampled
        ]
    )
    return values


def _row_metrics(generations: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    scores = [
        scorer.score(reference, answer) for answer, reference in zip(generations, references, strict=True)
    ]
    metrics = {name: np.array([score[name].fmeasure for score in scores]) for name in ROUGE_TYPES}
    metrics["exact_match"] = np.array(list(map(exact_match, generations, references)))
    metrics["token_f1"] = np.array(list(map(token_f1, generations, references)))
    return metrics


def _outputs(
    conversations: Sequence[Conversation],
    references: Sequence[str],
    generated_rows: Sequence[int],
    candidate: ModelScores,
    baseline: ModelScores,
) -> list[dict[str, Any]]:
    generated = {row: index for index, row in enumerate(generated_rows)}
    outputs = []
    for row, (conversation, reference) in enumerate(zip(conversations, references, strict=True)):
        entry: dict[str, Any] = {
            "row": row,
            "prompt": [dict(message) for message in conversation[:-1]],
            "reference": reference,
            "answer_tokens": int(candidate.tokens[row]),
            "answer_nll": float(candidate.nll[row]),
            "baseline_answer_nll": float(baseline.nll[row]),
        }
        if row in generated:
            entry["generated"] = candidate.generations[generated[row]]
            entry["baseline_generated"] = baseline.generations[generated[row]]
        outputs.append(entry)
    return outputs


def _load(model_dir: Path) -> PreTrainedModel:
    model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(model_dir)
    model.eval()
    return model
