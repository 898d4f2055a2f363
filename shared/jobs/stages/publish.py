"""The publish stage: a complete new version in the Triton model repository, then (optionally) promoted.

The version is written in full to a local staging repository, checked against its ONNX graph,
uploaded (version folders first, configs after), recorded in the registry with its lineage, and
only then loaded on Triton when the job asks to promote and its gate passed.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from shared.db.models import BaseModelEntry, Dataset, Job, Team
from shared.errors import StageError
from shared.jobs.spec import JobSpec
from shared.jobs.stages.context import StageContext
from shared.jobs.stages.data import download_job_model
from shared.jobs.stages.export import export_prefix
from shared.jobs.stages.runner import StageOutcome
from shared.registry.service import RegistryService
from shared.registry.triton import triton_loader
from shared.serving.repository_check import check_repository
from shared.serving.triton_config import ServingOptions
from shared.serving.triton_repository import EngineArtifact, publish_classifier
from shared.storage.base import ObjectStore


def run_publish(ctx: StageContext, job_id: uuid.UUID) -> StageOutcome:
    assert ctx.model_repository is not None
    with ctx.session_factory.begin() as session:
        job = session.get(Job, job_id)
        assert job is not None
        spec = JobSpec.model_validate(job.spec)
        assert spec.publish is not None
        team = session.get(Team, job.team_id)
        assert team is not None
        registry = RegistryService(session)
        model = registry.ensure_model(team.id, team.name, spec.publish.model, spec.task)
        version = registry.reserve_version(model, job_id)
        repository_name = model.repository_name
        export = dict(job.result.get("export", {}))
        lineage = _lineage(session, job, spec)

    model_dir = download_job_model(ctx, job_id)
    work = ctx.job_dir(job_id) / "publish"
    if spec.publish.serve == "int8" and "onnx_int8" not in export.get("formats", []):
        reason = (export.get("onnx_int8") or {}).get("rejected", "no INT8 export")
        raise StageError(
            f"publish.serve is 'int8' but the INT8 export was rejected: {reason}", code="export_mismatch"
        )
    if spec.publish.serve == "int8":
        onnx_name = "model.int8.onnx"
    elif "onnx_optimized" in export.get("formats", []):
        # The fused graph checked against PyTorch in the export stage: faster on ONNX Runtime.
        onnx_name = "model.optimized.onnx"
    else:
        onnx_name = "model.onnx"
    onnx_path = work / onnx_name
    ctx.store.get_file(f"{export_prefix(job_id)}/{onnx_name}", onnx_path)
    engines = []
    tensorrt = export.get("tensorrt") or {}
    if tensorrt.get("built"):
        engine_path = work / "engines" / tensorrt["key"] / "model.plan"
        ctx.store.get_file(f"{export_prefix(job_id)}/engines/{tensorrt['key']}/model.plan", engine_path)
        compute_capability = tensorrt["compute_capability"]
        engines.append(
            EngineArtifact(path=engine_path, key=tensorrt["key"], compute_capability=compute_capability)
        )

    staging = work / "repository"
    options = ServingOptions(
        max_batch_size=spec.export.max_batch_size if spec.export else 32,
        max_sequence_length=spec.hyperparameters.max_seq_length,
        preferred_batch_sizes=tuple(
            size for size in (8, 16, 32) if size <= (spec.export.max_batch_size if spec.export else 32)
        ),
    )
    published = publish_classifier(
        staging, repository_name, version, onnx_path, model_dir, export["labels"], options, engines
    )
    problems = check_repository(staging, repository_name)
    if problems:
        raise StageError(
            "the written repository fails its checks: " + "; ".join(problems), code="publish_invalid"
        )
    _upload(ctx.model_repository, staging, published.models, version)

    served = {"model.int8.onnx": "onnx_int8", "model.optimized.onnx": "onnx_optimized"}.get(onnx_name, "onnx")
    formats = [served, *(["tensorrt"] if engines else [])]
    promoted = False
    with ctx.session_factory.begin() as session:
        job = session.get(Job, job_id)
        assert job is not None
        registry = RegistryService(session)
        model = registry.get_model(job.team_id, spec.publish.model)
        registry.record_version(model, version, job_id, formats, {**lineage, "export": export})
        gate = (job.result.get("evaluation") or {}).get("gate")
        if spec.publish.promote and (gate is None or gate.get("passed")):
            load = (
                triton_loader(ctx.settings.triton_url, ctx.model_repository)
                if ctx.settings.triton_url
                else None
            )
            registry.promote(model, version, load)
            promoted = True
    return StageOutcome(
        result={
            "publish": {
                "model": spec.publish.model,
                "repository_name": repository_name,
                "version": version,
                "formats": formats,
                "models": published.models,
                "repository": ctx.model_repository.description,
                "promoted": promoted,
                "loaded_on_triton": promoted and bool(ctx.settings.triton_url),
            }
        }
    )


def _upload(repository: ObjectStore, staging: Path, models: list[str], version: int) -> None:
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


def _lineage(session, job: Job, spec: JobSpec) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    base_model = session.get(BaseModelEntry, job.base_model_id)
    datasets = {}
    for role, dataset_id in (
        ("train", job.train_dataset_id),
        ("validation", job.validation_dataset_id),
        ("test", job.test_dataset_id),
    ):
        if dataset_id is not None:
            dataset = session.get(Dataset, dataset_id)
            datasets[role] = {"id": str(dataset.id), "name": dataset.name, "sha256": dataset.sha256}
    return {
        "job_id": str(job.id),
        "base_model": {"name": base_model.name, "source": base_model.source} if base_model else None,
        "datasets": datasets,
        "spec": job.spec,
        "evaluation": job.result.get("evaluation"),
        "train": {
            key: job.result.get("train", {}).get(key) for key in ("global_step", "metrics", "precision")
        },
    }
