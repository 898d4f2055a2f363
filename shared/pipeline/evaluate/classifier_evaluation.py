"""The evaluate step for classifiers: the one call the worker makes.

Predicts the test rows once, builds the report, compares with a baseline on the same rows, checks
the promotion gate, runs the robustness perturbations and renders the HTML page. It takes paths and
plain data and returns plain data; storing the results is the caller's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.pipeline.evaluate.baseline import compare, majority_baseline_probabilities, majority_label
from shared.pipeline.evaluate.classification import classification_report, predictions_table
from shared.pipeline.evaluate.gate import GateResult, GateSpec, evaluate_gate
from shared.pipeline.evaluate.html_report import render_html_report
from shared.pipeline.evaluate.predict import load_classifier, predict_probabilities
from shared.pipeline.evaluate.robustness import robustness_report


@dataclass(frozen=True)
class EvaluationOptions:
    batch_size: int = 64
    max_length: int = 128
    positive_label: str | None = None
    confidence_threshold: float = 0.5
    calibration_bins: int = 10
    mistakes_count: int = 10
    bootstrap_resamples: int = 1000
    bootstrap_seed: int = 0
    robustness: bool = True
    robustness_seed: int = 0


@dataclass(frozen=True)
class EvaluationResult:
    report: dict[str, Any]
    predictions: list[dict[str, Any]]
    html: str
    # PNG files by name, the same pictures the HTML embeds, for the caller to store beside it.
    pictures: dict[str, bytes]
    gate: GateResult | None


def evaluate_classifier(
    model_dir: Path,
    test_rows: list[dict[str, Any]],
    train_labels: list[str],
    *,
    baseline_probabilities: np.ndarray | None = None,
    baseline_name: str | None = None,
    gate: GateSpec | dict[str, Any] | None = None,
    metric_points: list[dict[str, Any]] | None = None,
    options: EvaluationOptions | None = None,
    title: str = "Evaluation report",
) -> EvaluationResult:
    """Evaluate the classifier in `model_dir` on `test_rows` ({"text", "label"}, optional "text_pair"
    and "id").

    The baseline is `baseline_probabilities` (another model's, rows aligned with `test_rows`; see
    `baseline.probabilities_from_labels` for label-only predictions) or, when none is given, the
    majority class of `train_labels`.
    """
    options = options or EvaluationOptions()
    gate_spec = (
        None if gate is None else gate if isinstance(gate, GateSpec) else GateSpec.model_validate(gate)
    )
    if not test_rows:
        raise ValueError("no test rows to evaluate")
    texts = [str(row["text"]) for row in test_rows]
    text_pairs = [str(row["text_pair"]) for row in test_rows] if "text_pair" in test_rows[0] else None
    y_true = [str(row["label"]) for row in test_rows]
    row_ids = [row.get("id", index) for index, row in enumerate(test_rows)]

    classifier = load_classifier(model_dir)
    labels = classifier.labels

    def predict(batch_texts: list[str]) -> np.ndarray:
        return predict_probabilities(
            classifier, batch_texts, text_pairs, options.batch_size, options.max_length
        )

    probabilities = predict(texts)
    report = classification_report(
        y_true,
        probabilities,
        labels,
        texts,
        positive_label=options.positive_label,
        row_ids=row_ids,
        confidence_threshold=options.confidence_threshold,
        calibration_bin_count=options.calibration_bins,
        mistakes_count=options.mistakes_count,
    )
    if baseline_probabilities is None:
        baseline_probabilities = majority_baseline_probabilities(train_labels, labels, len(texts))
        baseline_name = baseline_name or f"majority class ({majority_label(train_labels, labels)})"
    comparison = compare(
        y_true,
        probabilities,
        baseline_probabilities,
        labels,
        baseline_name=baseline_name or "baseline",
        positive_label=options.positive_label,
        n_resamples=options.bootstrap_resamples,
        seed=options.bootstrap_seed,
    )
    report["baseline_comparison"] = comparison
    gate_result = evaluate_gate(gate_spec, report["metrics"], comparison) if gate_spec is not None else None
    report["gate"] = (
        {"spec": gate_spec.model_dump(), **gate_result.as_dict()} if gate_spec and gate_result else None
    )
    robustness = (
        robustness_report(texts, y_true, probabilities, labels, predict, seed=options.robustness_seed)
        if options.robustness
        else None
    )
    report["robustness"] = robustness
    html, pictures = render_html_report(
        report,
        title=title,
        gate_result=gate_result,
        comparison=comparison,
        robustness=robustness,
        metric_points=metric_points,
    )
    return EvaluationResult(
        report=report,
        predictions=predictions_table(row_ids, texts, y_true, probabilities, labels, text_pairs),
        html=html,
        pictures=pictures,
        gate=gate_result,
    )
