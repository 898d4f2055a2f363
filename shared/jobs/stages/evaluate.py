"""The evaluate stage: the trained model against a baseline on the job's test rows.

Writes the full report, every prediction, the HTML page and its pictures to the object store
under `jobs/<id>/evaluation/`, keeps a summary on the job, and stops the job with
`gate_failed` when the promotion gate says no (after the report is stored, so the team can see why).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import StageError
from shared.jobs.results import BaselineSummary, EvaluationResult, MetricDelta
from shared.jobs.run import JobRun
from shared.jobs.stages.data import download_job_model, download_model, load_job_rows
from shared.jobs.stages.runner import StageOutcome
from shared.pipeline.evaluate import EvaluationOptions, evaluate_classifier
from shared.pipeline.evaluate.classification import SUMMARY_METRICS
from shared.pipeline.evaluate.predict import load_classifier, predict_probabilities


class GateFailed(StageError):
    code = "gate_failed"


def run_evaluate(run: JobRun) -> StageOutcome:
    spec = run.spec
    assert spec.evaluation is not None
    rows = load_job_rows(run)
    split, evaluation_rows = rows.evaluation_rows
    model_dir = download_job_model(run)
    test = [
        {
            "id": row.row,
            "text": row.text,
            "label": row.label,
            **({"text_pair": row.text_pair} if row.text_pair else {}),
        }
        for row in evaluation_rows
    ]
    baseline_probabilities, baseline_name = _baseline(run, test, model_dir)
    points = [
        {"step": point.step, "epoch": point.epoch, "name": point.name, "value": point.value}
        for point in run.metric_points()
    ]
    evaluated = evaluate_classifier(
        model_dir,
        test,
        [row.label for row in rows.train],
        baseline_probabilities=baseline_probabilities,
        baseline_name=baseline_name,
        gate=spec.evaluation.gate,
        metric_points=points,
        options=EvaluationOptions(
            max_length=spec.hyperparameters.max_seq_length,
            bootstrap_resamples=spec.evaluation.bootstrap_resamples,
            bootstrap_seed=spec.hyperparameters.seed,
            robustness=spec.evaluation.robustness,
            robustness_seed=spec.hyperparameters.seed,
            confidence_threshold=spec.evaluation.confidence_threshold,
        ),
        title=f"Evaluation of job {run.job_id}",
    )

    store, layout = run.ctx.store, run.layout
    report = {**evaluated.report, "split": split}
    store.put_bytes(
        layout.evaluation_file("report.json"), json.dumps(report, default=str).encode(), "application/json"
    )
    predictions = "\n".join(json.dumps(row, default=str) for row in evaluated.predictions) + "\n"
    store.put_bytes(layout.evaluation_file("predictions.jsonl"), predictions.encode(), "application/x-ndjson")
    store.put_bytes(layout.evaluation_file("report.html"), evaluated.html.encode(), "text/html")
    for name, picture in evaluated.pictures.items():
        store.put_bytes(layout.evaluation_file(f"pictures/{name}"), picture, "image/png")

    result = summarize(report, split, layout.evaluation)
    if not result.gate_passed:
        run.record_result(result)
        assert evaluated.gate is not None
        raise GateFailed("promotion gate failed: " + "; ".join(evaluated.gate.reasons))
    return StageOutcome(result=result)


def summarize(report: dict[str, Any], split: str, prefix: str) -> EvaluationResult:
    """The job's evaluation summary: the headline metrics, the baseline's, and what changed."""
    comparison = report["baseline_comparison"]
    metrics = {name: report["metrics"].get(name) for name in SUMMARY_METRICS if name in report["metrics"]}
    compared = {name: entry for name, entry in comparison["metrics"].items() if name in metrics}
    return EvaluationResult(
        split=split,
        rows=comparison["rows"],
        metrics=metrics,
        baseline=BaselineSummary(
            name=comparison["baseline"], metrics={name: entry["baseline"] for name, entry in compared.items()}
        ),
        deltas={
            name: MetricDelta(delta=entry["delta"], interval=entry["delta_interval"])
            for name, entry in compared.items()
        },
        significance=comparison["mcnemar"],
        gate=report.get("gate"),
        report_prefix=prefix,
    )


def _baseline(
    run: JobRun, test: list[dict[str, Any]], model_dir: Path
) -> tuple[np.ndarray | None, str | None]:
    """None for the majority class (the pipeline computes it), else another job's probabilities."""
    assert run.spec.evaluation is not None
    baseline_spec = run.spec.evaluation.baseline
    if baseline_spec in (None, "majority"):
        return None, None
    baseline = run.baseline_model(baseline_spec)
    other_dir = download_model(run, baseline.model_prefix, run.work_dir("evaluate") / "baseline")
    classifier = load_classifier(other_dir)
    ours = load_classifier(model_dir)
    if list(classifier.labels) != list(ours.labels):
        raise StageError(
            f"baseline job {baseline.job_id} predicts labels {list(classifier.labels)}, "
            f"this job {list(ours.labels)}",
            code="baseline_unavailable",
        )
    texts = [row["text"] for row in test]
    pairs = [row["text_pair"] for row in test] if "text_pair" in test[0] else None
    probabilities = predict_probabilities(
        classifier, texts, pairs, 64, run.spec.hyperparameters.max_seq_length
    )
    return probabilities, baseline.name
