"""The export stage: ONNX checked against PyTorch, ORT variants, and a TensorRT engine on GPUs.

Every variant carries its own parity figures on the job's real rows; the FP32 export fails the
job with `export_mismatch` beyond tolerance. TensorRT is built only on a GPU worker with TensorRT
installed; elsewhere the stage records why it was skipped and goes on with ONNX.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shared.jobs.results import ExportResult, ExportVariant, TensorRTResult
from shared.jobs.run import JobRun
from shared.jobs.stages.data import download_job_model, load_job_rows
from shared.jobs.stages.runner import StageOutcome
from shared.pipeline.export.errors import ExportMismatch, TensorRTUnavailable
from shared.pipeline.export.onnx_export import (
    OnnxExportInfo,
    check_parity,
    export_classifier_onnx,
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
