"""The evaluate stage of a causal-LM job: the fine-tuned model against a baseline on the test rows.

The baseline is the base model (default), another job's model (`job:<id>`) or the production
version of a published model (`production:<name>`), always with the fine-tuned model's chat
template and the same greedy decoding. Stores the report, every row's outputs and the HTML page
under `jobs/<id>/evaluation/`, keeps a summary on the job, and stops the job with `gate_failed`
when the promotion gate says no.
"""

from __future__ import annotations

import json
from typing import Any

from shared.errors import StageError
from shared.jobs.results import BaselineSummary, EvaluationResult, MetricDelta
from shared.jobs.run import JobRun
from shared.jobs.stages.causal_lm.data import load_conversations
from shared.jobs.stages.data import base_model_dir, download_job_model, download_model
from shared.jobs.stages.evaluate import GateFailed
from shared.jobs.stages.runner import StageOutcome
from shared.pipeline.evaluate.generation import GenerationOptions
from shared.pipeline.evaluate.generation_evaluation import evaluate_generation


def run_evaluate(run: JobRun) -> StageOutcome:
    spec = run.spec
    evaluation = spec.evaluation
    assert evaluation is not None
    split, dataset = load_conversations(run).evaluation
    conversations = [messages for batch in dataset.iter(batch_size=512) for messages in batch["messages"]]
    model_dir = download_job_model(run)
    if evaluation.baseline in (None, "base"):
        baseline_dir, baseline_name = base_model_dir(run), f"base model {run.inputs.base_model.name}"
    else:
        other = run.baseline_model(evaluation.baseline)
        baseline_dir = download_model(run, other.model_prefix, run.work_dir("evaluate") / "baseline")
        baseline_name = other.name
    points = [
        {"step": point.step, "epoch": point.epoch, "name": point.name, "value": point.value}
        for point in run.metric_points()
    ]
    try:
        evaluated = evaluate_generation(
            model_dir,
            conversations,
            baseline_dir=baseline_dir,
            baseline_name=baseline_name,
            gate=evaluation.gate,
            metric_points=points,
            options=GenerationOptions(
                max_new_tokens=evaluation.max_new_tokens,
                max_length=max(spec.hyperparameters.max_seq_length, evaluation.max_new_tokens + 1),
                max_generations=evaluation.max_generations,
                bootstrap_resamples=evaluation.bootstrap_resamples,
                seed=spec.hyperparameters.seed,
            ),
            title=f"Evaluation of job {run.job_id}",
        )
    except ValueError as exc:
        raise StageError(str(exc), code="baseline_unavailable") from exc

    store, layout = run.ctx.store, run.layout
    report = {**evaluated.report, "split": split}
    store.put_bytes(
        layout.evaluation_file("report.json"), json.dumps(report, default=str).encode(), "application/json"
    )
    outputs = "\n".join(json.dumps(row, default=str, ensure_ascii=False) for row in evaluated.outputs) + "\n"
    store.put_bytes(layout.evaluation_file("predictions.jsonl"), outputs.encode(), "application/x-ndjson")
    store.put_bytes(layout.evaluation_file("report.html"), evaluated.html.encode(), "text/html")

    result = summarize(report, split, layout.evaluation)
    if not result.gate_passed:
        run.record_result(result)
        assert evaluated.gate is not None
        raise GateFailed("promotion gate failed: " + "; ".join(evaluated.gate.reasons))
    return StageOutcome(result=result)


def summarize(report: dict[str, Any], split: str, prefix: str) -> EvaluationResult:
    comparison = report["baseline_comparison"]
    compared = comparison["metrics"]
    return EvaluationResult(
        split=split,
        rows=report["rows"],
        metrics=report["metrics"],
        baseline=BaselineSummary(
            name=comparison["baseline"], metrics={name: entry["baseline"] for name, entry in compared.items()}
        ),
        deltas={
            name: MetricDelta(delta=entry["delta"], interval=entry["delta_interval"])
            for name, entry in compared.items()
        },
        significance=comparison["significance"],
        gate=report.get("gate"),
        report_prefix=prefix,
    )
