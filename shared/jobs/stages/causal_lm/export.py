"""The export stage of a causal-LM job: ONNX Runtime GenAI builds for CPU serving, checked.

The merged model (safetensors) and the adapter stay the portable artifacts (the train stage stored
them). Here the merged model is built to FP32 and INT4 ONNX Runtime GenAI models: FP32 must
continue the job's test prompts exactly as PyTorch does (greedy), or the job fails with
`export_mismatch`; INT4 may lose up to `export.int4_perplexity_tolerance` of answer perplexity, or
it is recorded as rejected and left out.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from shared.jobs.results import ExportResult, ExportVariant
from shared.jobs.run import JobRun
from shared.jobs.stages.causal_lm.data import load_conversations
from shared.jobs.stages.data import download_job_model
from shared.jobs.stages.runner import StageOutcome
from shared.pipeline.export.genai import export_causal_lm_genai

EXPORT_SUMMARY_FILE = "export.json"


def genai_folder(precision: str) -> str:
    """Where a precision's build lives under jobs/<id>/export/."""
    return f"genai-{precision}"


def run_export(run: JobRun) -> StageOutcome:
    spec = run.spec
    export = spec.export
    assert export is not None
    _, dataset = load_conversations(run).evaluation
    # The checks need a few rows, not the whole test set.
    wanted = min(len(dataset), max(export.check_prompts, 16))
    rows = dataset[:wanted]["messages"]
    check = rows[: export.check_prompts]
    model_dir = download_job_model(run)
    built = export_causal_lm_genai(
        model_dir,
        run.work_dir("export"),
        check_prompts=[messages[:-1] for messages in check],
        check_rows=[
            (messages[:-1], messages[-1]["content"]) for messages in rows[: max(export.check_prompts, 16)]
        ],
        precisions=export.genai,
        max_new_tokens=spec.evaluation.max_new_tokens if spec.evaluation else 64,
        int4_ppl_tolerance=export.int4_perplexity_tolerance,
    )
    result = ExportResult(formats=[])
    for precision, variant in built.variants.items():
        folder = genai_folder(precision)
        figures = {
            "greedy": asdict(variant.greedy),
            "perplexity": asdict(variant.perplexity) if variant.perplexity else None,
            "perplexity_increase": variant.perplexity_increase,
            "reference_perplexity": asdict(built.reference_perplexity)
            if built.reference_perplexity
            else None,
            "builder_options": variant.builder_options,
        }
        recorded = ExportVariant(
            path=folder,
            size_bytes=variant.size_bytes,
            seconds=variant.build_seconds,
            parity=figures,
            rejected=variant.rejected,
        )
        setattr(result, f"genai_{precision}", recorded)
        if variant.accepted and variant.directory is not None:
            run.ctx.store.upload_dir(variant.directory, run.layout.export_file(folder))
            result.formats.append(f"genai_{precision}")
    summary = json.dumps(result.model_dump(mode="json", exclude_none=True)).encode()
    run.ctx.store.put_bytes(run.layout.export_file(EXPORT_SUMMARY_FILE), summary, "application/json")
    return StageOutcome(result=result)
