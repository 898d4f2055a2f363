"""The publish stage: a complete new version in the Triton model repository, then (optionally) promoted.

The version is written in full to a local staging repository, checked against its ONNX graph,
uploaded (version folders first, configs after), recorded in the registry with its lineage, and
promoted when the job asks for it and its gate passed; the load on Triton follows the commit.
"""

from __future__ import annotations

from pathlib import Path

from shared.errors import StageError
from shared.jobs.results import EvaluationResult, ExportResult, PublishResult
from shared.jobs.run import JobRun
from shared.jobs.stages.data import download_job_model
from shared.jobs.stages.export import served_file
from shared.jobs.stages.runner import StageOutcome
from shared.serving.repository_check import check_repository
from shared.serving.triton_config import ServingOptions
from shared.serving.triton_repository import EngineArtifact, publish_classifier
from shared.storage.base import ObjectStore


def run_publish(run: JobRun) -> StageOutcome:
    spec = run.spec
    assert spec.publish is not None
    export = run.result(ExportResult)
    if export is None:
        raise StageError("the job has no export to publish", code="publish_invalid")
    repository_name, version = reserve_version(run)

    onnx_name, served = _served_onnx(spec.publish.serve, export)
    model_dir = download_job_model(run)
    work = run.work_dir("publish")
    onnx_path = run.ctx.store.get_file(run.layout.export_file(onnx_name), work / onnx_name)
    engines = []
    tensorrt = export.tensorrt
    if (
        tensorrt is not None
        and tensorrt.built
        and tensorrt.path
        and tensorrt.key
        and tensorrt.compute_capability
    ):
        engine_path = run.ctx.store.get_file(run.layout.export_file(tensorrt.path), work / tensorrt.path)
        engines.append(
            EngineArtifact(path=engine_path, key=tensorrt.key, compute_capability=tensorrt.compute_capability)
        )

    max_batch_size = spec.export.max_batch_size if spec.export else 32
    options = ServingOptions(
        max_batch_size=max_batch_size,
        max_sequence_length=spec.hyperparameters.max_seq_length,
        preferred_batch_sizes=tuple(size for size in (8, 16, 32) if size <= max_batch_size),
    )
    staging = work / "repository"
    published = publish_classifier(
        staging, repository_name, version, onnx_path, model_dir, export.labels, options, engines
    )
    problems = check_repository(staging, repository_name)
    if problems:
        raise StageError(
            "the written repository fails its checks: " + "; ".join(problems), code="publish_invalid"
        )
    upload_version(run.ctx.model_repository, staging, published.models, version)

    formats = [served, *(["tensorrt"] if engines else [])]
    return StageOutcome(
        result=record_version(run, repository_name, version, formats, published.models, export)
    )


def reserve_version(run: JobRun) -> tuple[str, int]:
    """(repository name, version number) this job publishes as; the same again when the stage re-runs."""
    spec = run.spec
    assert spec.publish is not None
    with run.registry() as registry:
        model = registry.ensure_model(run.inputs.team_id, run.inputs.team_name, spec.publish.model, spec.task)
        return model.repository_name, registry.reserve_version(model, run.job_id)


def record_version(
    run: JobRun,
    repository_name: str,
    version: int,
    formats: list[str],
    models: list[str],
    export: ExportResult,
) -> PublishResult:
    """Record the uploaded version with its lineage, and promote it when the spec asks and the gate
    passed (Triton loads it after the commit)."""
    spec = run.spec
    assert spec.publish is not None
    evaluation = run.result(EvaluationResult)
    promote = spec.publish.promote and (evaluation is None or evaluation.gate_passed)
    lineage = {**run.lineage(), "export": export.model_dump(mode="json", exclude_none=True)}
    with run.registry() as registry:
        model = registry.get_model(run.inputs.team_id, spec.publish.model)
        registry.record_version(model, version, run.job_id, formats, lineage)
        if promote:
            registry.promote(model, version)
    return PublishResult(
        model=spec.publish.model,
        repository_name=repository_name,
        version=version,
        formats=formats,
        models=models,
        repository=run.ctx.model_repository.description,
        promoted=promote,
        loaded_on_triton=promote and bool(run.ctx.settings.triton_url),
    )


def _served_onnx(serve: str, export: ExportResult) -> tuple[str, str]:
    """(file name, format) of the ONNX the ensemble serves."""
    if serve == "int8" and "onnx_int8" not in export.formats:
        reason = export.onnx_int8.rejected if export.onnx_int8 else None
        raise StageError(
            f"publish.serve is 'int8' but the INT8 export was rejected: {reason or 'no INT8 export'}",
            code="export_mismatch",
        )
    return served_file(export, serve)


def upload_version(repository: ObjectStore, staging: Path, models: list[str], version: int) -> None:
    """Version folders first, then each model's config and labels: Triton never sees half a version."""
    for model in models:
        version_dir = staging / model / str(version)
        if any(version_dir.iterdir()):
            repository.upload_dir(version_dir, f"{model}/{version}")
        else:
            # Object stores have no empty folders; Triton needs the ensemble's version to exist.
            repository.put_bytes(f"{model}/{version}/.keep", b"")
    for model in models:
        for name in ("config.pbtxt", "labels.txt"):
            path = staging / model / name
            if path.exists():
                repository.put_file(f"{model}/{name}", path)
