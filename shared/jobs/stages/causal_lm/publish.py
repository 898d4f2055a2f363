"""The publish stage of a causal-LM job: a new version of a generation model in the Triton repository.

The version holds the ONNX Runtime GenAI build the spec serves (`publish.serve`: fp32 or int4)
behind a decoupled Python-backend model that streams text; on a deployment with GPU workers it also
gets a vLLM-backend model over the merged weights. As for classifiers: written in full to a staging
repository, checked, uploaded (version folders first), recorded in the registry with its lineage,
and promoted when asked and the gate passed, Triton loading it after the commit.
"""

from __future__ import annotations

from shared.errors import StageError
from shared.jobs.results import ExportResult
from shared.jobs.run import JobRun
from shared.jobs.stages.causal_lm.export import genai_folder
from shared.jobs.stages.publish import record_version, reserve_version, upload_version
from shared.jobs.stages.runner import StageOutcome
from shared.serving.repository_check import check_repository
from shared.serving.triton_repository import VllmDeployment, publish_causal_lm


def run_publish(run: JobRun) -> StageOutcome:
    spec = run.spec
    assert spec.publish is not None
    export = run.result(ExportResult)
    precision = spec.publish.serve
    served = f"genai_{precision}"
    if export is None or served not in export.formats:
        variant = export.variant(served) if export else None
        reason = variant.rejected if variant and variant.rejected else "it was not built"
        raise StageError(
            f"publish.serve is '{precision}' but that build is not available: {reason}",
            code="export_mismatch",
        )
    repository_name, version = reserve_version(run)

    work = run.work_dir("publish")
    genai_dir = run.ctx.store.download_dir(
        run.layout.export_file(genai_folder(precision)), work / genai_folder(precision)
    )
    # vLLM reads the merged weights itself, from where the train stage stored them.
    vllm = None
    if run.ctx.settings.gpu_workers:
        location = run.ctx.store.uri(run.layout.model)
        # From a bucket, vLLM streams the safetensors (AWS_ENDPOINT_URL names the server).
        vllm = VllmDeployment(
            model_location=location, load_format="runai_streamer" if location.startswith("s3://") else None
        )
    staging = work / "repository"
    published = publish_causal_lm(staging, repository_name, version, genai_dir, precision, vllm=vllm)
    problems = check_repository(staging, repository_name)
    if problems:
        raise StageError(
            "the written repository fails its checks: " + "; ".join(problems), code="publish_invalid"
        )
    upload_version(run.ctx.model_repository, staging, published.models, version)

    formats = [served, *(["vllm"] if vllm is not None else [])]
    return StageOutcome(
        result=record_version(run, repository_name, version, formats, published.models, export)
    )
