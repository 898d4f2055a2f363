"""The export stage: ONNX checked against PyTorch, ORT variants, and a TensorRT engine on GPUs.

Every variant carries its own parity figures on the job's real rows; the FP32 export fails the
job with `export_mismatch` beyond tolerance. TensorRT is built only on a GPU worker with TensorRT
installed; elsewhere the stage records why it was skipped and goes on with ONNX.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from shared.jobs.layout import JobLayout
from shared.jobs.results import ExportResult, ExportVariant, TensorRTResult
from shared.jobs.run import JobRun
from shared.jobs.stages.data import download_job_model, download_model, load_job_rows
from shared.jobs.stages.runner import StageOutcome
from shared.pipeline.export.errors import ExportMismatch, TensorRTUnavailable
from shared.pipeline.export.onnx_export import (
    OnnxExportInfo,
    check_parity,
    export_classifier_onnx,
    measure_latency,
    optimize_onnx,
    quantize_int8,
)

PARITY_ROWS = 64
# File names under jobs/<id>/export/, one per variant.
ONNX_FILE = "model.onnx"
OPTIMIZED_FILE = "model.optimized.onnx"
INT8_FILE = "model.int8.onnx"
EXPORT_SUMMARY_FILE = "export.json"


def run_export(run: JobRun) -> StageOutcome:
    spec = run.spec
    export = spec.export
    assert export is not None
    rows = load_job_rows(run)
    model_dir = download_job_model(run)
    texts = [row.text for row in rows.evaluation_rows[1][:PARITY_ROWS]]
    out_dir = run.work_dir("export")
    max_length = spec.hyperparameters.max_seq_length

    info = export_classifier_onnx(model_dir, out_dir / ONNX_FILE, opset=export.opset, max_length=max_length)
    parity = check_parity(model_dir, info.path, texts, tolerance=export.parity_tolerance)
    files: dict[str, Path] = {ONNX_FILE: info.path}
    result = ExportResult(
        formats=["onnx"],
        opset=info.opset,
        input_names=info.input_names,
        labels=info.labels,
        max_length=max_length,
        onnx=ExportVariant(
            path=ONNX_FILE, size_bytes=info.size_bytes, seconds=info.export_seconds, parity=parity.as_dict()
        ),
    )
    if export.optimize:
        optimized = optimize_onnx(
            model_dir, info.path, out_dir / OPTIMIZED_FILE, texts, export.parity_tolerance
        )
        result.onnx_optimized = ExportVariant(
            path=OPTIMIZED_FILE, seconds=optimized.seconds, parity=optimized.parity.as_dict()
        )
        result.formats.append("onnx_optimized")
        files[OPTIMIZED_FILE] = optimized.path
    if export.int8:
        try:
            # Quantize the fused graph when there is one: the INT8 kernels then run fused too.
            source = files.get(OPTIMIZED_FILE, info.path)
            quantized = quantize_int8(
                model_dir, source, out_dir / INT8_FILE, texts, export.int8_min_label_agreement
            )
        except ExportMismatch as exc:
            # An optional CPU variant that misses its bar is left out, with its figures; the job
            # fails on it only when it was to be served (the publish stage checks).
            result.onnx_int8 = ExportVariant(path=INT8_FILE, rejected=exc.message, parity=exc.details or {})
        else:
            result.onnx_int8 = ExportVariant(
                path=INT8_FILE, seconds=quantized.seconds, parity=quantized.parity.as_dict()
            )
            result.formats.append("onnx_int8")
            files[INT8_FILE] = quantized.path
    for name, file_name in (
        ("onnx", ONNX_FILE),
        ("onnx_optimized", OPTIMIZED_FILE),
        ("onnx_int8", INT8_FILE),
    ):
        variant = result.variant(name)
        if variant is not None and variant.rejected is None:
            variant.latency = measure_latency(files[file_name], model_dir, texts, max_length).as_dict()
    if spec.distillation is not None:
        result.distillation = _against_teacher(
            run, spec.distillation.teacher_job_id, result, texts, max_length
        )
    if export.tensorrt:
        result.tensorrt = _tensorrt(info, texts, model_dir, export.max_batch_size, max_length, out_dir)
        if result.tensorrt.built and result.tensorrt.path is not None:
            result.formats.append("tensorrt")
            files[result.tensorrt.path] = out_dir / result.tensorrt.path
    else:
        result.tensorrt = TensorRTResult(built=False, skipped="not requested")

    for name, path in files.items():
        run.ctx.store.put_file(run.layout.export_file(name), path)
    summary = json.dumps(result.model_dump(mode="json", exclude_none=True)).encode()
    run.ctx.store.put_bytes(run.layout.export_file(EXPORT_SUMMARY_FILE), summary, "application/json")
    return StageOutcome(result=result)


def served_file(export: ExportResult, serve: str = "fp32") -> tuple[str, str]:
    """(file name, format) of the ONNX a classifier is served from: INT8 when asked, else the fused
    FP32 graph when one was built, else the plain export."""
    if serve == "int8":
        return INT8_FILE, "onnx_int8"
    if "onnx_optimized" in export.formats:
        return OPTIMIZED_FILE, "onnx_optimized"
    return ONNX_FILE, "onnx"


def _against_teacher(
    run: JobRun, teacher_job_id: uuid.UUID, student: ExportResult, texts: list[str], max_length: int
) -> dict[str, Any]:
    """The student's served graph against its teacher's, timed here on the same rows and shape."""
    teacher_export = run.other_job_result(teacher_job_id, ExportResult)
    comparison: dict[str, Any] = {"teacher_job_id": str(teacher_job_id)}
    if teacher_export is None:
        return {**comparison, "skipped": "the teacher job was not exported"}
    teacher_file, teacher_format = served_file(teacher_export)
    _, student_format = served_file(student)
    teacher = run.baseline_model(f"job:{teacher_job_id}")
    teacher_dir = download_model(run, teacher.model_prefix, run.work_dir("teacher"))
    teacher_layout = JobLayout(teacher_job_id)
    teacher_onnx = run.ctx.store.get_file(
        teacher_layout.export_file(teacher_file), run.work_dir("teacher-export") / teacher_file
    )
    teacher_latency = measure_latency(teacher_onnx, teacher_dir, texts, max_length)
    student_variant = student.variant(student_format)
    assert student_variant is not None and student_variant.latency is not None
    student_p50 = float(student_variant.latency["p50_ms"])
    teacher_figures = teacher_latency.as_dict()
    # The ratio of the two figures shown (both rounded alike), so that it can be checked from them.
    teacher_p50 = float(teacher_figures["p50_ms"])
    return {
        **comparison,
        "teacher_format": teacher_format,
        "student_format": student_format,
        "teacher_latency": teacher_figures,
        "student_latency": student_variant.latency,
        "speedup_p50": round(teacher_p50 / student_p50, 3) if student_p50 > 0 else None,
    }


def _tensorrt(
    info: OnnxExportInfo, texts: list[str], model_dir: Path, max_batch: int, max_length: int, out_dir: Path
) -> TensorRTResult:
    """An engine for this worker's GPU, or the reason there is none."""
    from transformers import AutoTokenizer

    from shared.pipeline.export.tensorrt import EngineProfile, build_tensorrt_engine

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoded = tokenizer(texts[:16], padding=True, truncation=True, max_length=max_length, return_tensors="np")
    feeds = [{name: np.asarray(encoded[name], dtype=np.int64) for name in info.input_names}]
    profile = EngineProfile(
        max_batch=max_batch, opt_batch=min(8, max_batch), opt_sequence=max_length, max_sequence=max_length
    )
    try:
        built = build_tensorrt_engine(
            info.path, out_dir / "engines", info.input_names, profile, parity_feeds=feeds
        )
    except TensorRTUnavailable as exc:
        return TensorRTResult(built=False, skipped=exc.reason)
    return TensorRTResult(
        built=True,
        key=built.key,
        tensorrt_version=built.tensorrt_version,
        compute_capability=built.compute_capability,
        precision_mode=built.precision_mode,
        fp16=built.fp16,
        build_seconds=built.build_seconds,
        build_log=built.build_log[-50:],
        parity=None
        if built.parity is None
        else {
            "max_abs_logit_diff": built.parity.max_abs_logit_diff,
            "label_agreement": built.parity.label_agreement,
        },
        path=str(built.path.relative_to(out_dir)),
    )
