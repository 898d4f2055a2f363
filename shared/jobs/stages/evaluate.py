"""The evaluate stage: the trained model against a baseline on the job's test rows.

Writes the full report, every prediction, the HTML page and its pictures to the object store
under `jobs/<id>/evaluation/`, keeps a summary on the job, and stops the job with
`gate_failed` when the promotion gate says no (after the report is stored, so the team can see why).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from shared.db.models import Job
from shared.errors import StageError
from shared.jobs.repository import JobRepository
from shared.jobs.spec import JobSpec
from shared.jobs.stages.context import SUMMARY_METRICS, StageContext, evaluation_prefix, job_prefix
from shared.jobs.stages.data import download_job_model, load_job_rows
from shared.jobs.stages.runner import StageOutcome
from shared.pipeline.evaluate import EvaluationOptions, evaluate_classifier
from shared.pipeline.evaluate.predict import load_classifier, predict_probabilities
from shared.registry.repository import RegistryRepository


def run_evaluate(ctx: StageContext, job_id: uuid.UUID) -> StageOutcome:
    spec, rows = load_job_rows(ctx, job_id)
    assert spec.evaluation is not None
    test_rows = rows.test if rows.test is not None else rows.validation
    split = "test" if rows.test is not None else "validation"
    model_dir = download_job_model(ctx, job_id)
    test = [
        {
            "id": row.row,
            "text": row.text,
            "label": row.label,
            **({"text_pair": row.text_pair} if row.text_pair else {}),
        }
        for row in test_rows
    ]
    baseline_probabilities, baseline_name = _baseline(ctx, job_id, spec, test, model_dir)
    with ctx.session_factory() as session:
        points = [
            {"step": point.step, "epoch": point.epoch, "name": point.name, "value": point.value}
            for point in JobRepository(session).list_metric_points(job_id)
        ]
    result = evaluate_classifier(
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
        title=f"Evaluation of job {job_id}",
    )

    prefix = evaluation_prefix(job_id)
    report = {**result.report, "split": split}
    ctx.store.put_bytes(f"{prefix}/report.json", json.dumps(report, default=str).encode(), "application/json")
    predictions = "\n".join(json.dumps(row, default=str) for row in result.predictions) + "\n"
    ctx.store.put_bytes(f"{prefix}/predictions.jsonl", predictions.encode(), "application/x-ndjson")
    ctx.store.put_bytes(f"{prefix}/report.html", result.html.encode(), "text/html")
    for name, picture in result.pictures.items():
        ctx.store.put_bytes(f"{prefix}/pictures/{name}", picture, "image/png")

    summary = _summary(report, split, prefix)
    if result.gate is not None and not result.gate.passed:
        with ctx.session_factory.begin() as session:
            job = session.get(Job, job_id)
            assert job is not None
            job.result = {**job.result, "evaluation": summary}
        raise StageError("promotion gate failed: " + "; ".join(result.gate.reasons), code="gate_failed")
    return StageOutcome(result={"evaluation": summary})


def _summary(report: dict[str, Any], split: str, prefix: str) -> dict[str, Any]:
    comparison = report["baseline_comparison"]
    metrics = {name: report["metrics"].get(name) for name in SUMMARY_METRICS if name in report["metrics"]}
    return {
        "split": split,
        "rows": comparison["rows"],
        "metrics": metrics,
        "baseline": {
            "name": comparison["baseline"],
            "metrics": {
                name: entry["baseline"] for name, entry in comparison["metrics"].items() if name in metrics
            },
        },
        "deltas": {
            name: {"delta": entry["delta"], "interval": entry["delta_interval"]}
            for name, entry in comparison["metrics"].items()
            if name in metrics
        },
        "mcnemar": comparison["mcnemar"],
        "gate": report.get("gate"),
        "report_prefix": prefix,
    }


def _baseline(
    ctx: StageContext, job_id: uuid.UUID, spec: JobSpec, test: list[dict[str, Any]], model_dir: Path
) -> tuple[Any, str | None]:
    """None for the majority class (the pipeline computes it), else another job's probabilities."""
    assert spec.evaluation is not None
    baseline = spec.evaluation.baseline
    if baseline == "majority":
        return None, None
    with ctx.session_factory() as session:
        this_job = session.get(Job, job_id)
        assert this_job is not None
        if baseline.startswith("production:"):
            other_id, baseline_name = _production_job(
                session, this_job.team_id, baseline.removeprefix("production:")
            )
        else:
            other_id = uuid.UUID(baseline.removeprefix("job:"))
            baseline_name = f"job {other_id}"
        other = session.get(Job, other_id)
        if other is None or this_job is None or other.team_id != this_job.team_id:
            raise StageError(f"baseline job {other_id} not found", code="baseline_unavailable")
        if "model_prefix" not in other.result.get("train", {}):
            raise StageError(f"baseline job {other_id} has no trained model", code="baseline_unavailable")
    other_dir = ctx.job_dir(job_id) / "evaluate" / "baseline"
    if not (other_dir / "config.json").is_file():
        ctx.store.download_dir(f"{job_prefix(other_id)}/model", other_dir)
    classifier = load_classifier(other_dir)
    ours = load_classifier(model_dir)
    if list(classifier.labels) != list(ours.labels):
        raise StageError(
            f"baseline job {other_id} predicts labels {list(classifier.labels)}, this job {list(ours.labels)}",
            code="baseline_unavailable",
        )
    texts = [row["text"] for row in test]
    pairs = [row["text_pair"] for row in test] if "text_pair" in test[0] else None
    probabilities = predict_probabilities(classifier, texts, pairs, 64, spec.hyperparameters.max_seq_length)
    return probabilities, baseline_name


def _production_job(session, team_id: uuid.UUID, model_name: str) -> tuple[uuid.UUID, str]:  # type: ignore[no-untyped-def]
    """The job behind the version of `model_name` currently marked production."""
    model = RegistryRepository(session).get_model(team_id, model_name)
    if model is None or model.production_version is None:
        raise StageError(
            f"model '{model_name}' has no production version to compare with", code="baseline_unavailable"
        )
    version = RegistryRepository(session).get_version(model.id, model.production_version)
    assert version is not None
    return version.job_id, f"{model_name} v{model.production_version} (production)"
