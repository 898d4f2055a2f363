"""The export stage: ONNX checked against PyTorch, ORT variants, and a TensorRT engine on GPUs.

Every variant carries its own parity figures on the job's real rows; the FP32 export fails the
job with `export_mismatch` beyond tolerance. TensorRT is built only on a GPU worker with TensorRT
installed; elsewhere the stage records why it was skipped and goes on with ONNX.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import numpy as np

from shared.jobs.stages.context import StageContext, job_prefix
from shared.jobs.stages.data import download_job_model, load_job_rows
from shared.jobs.stages.runner import StageOutcome
from shared.pipeline.export.errors import ExportMismatch, TensorRTUnavailable
from shared.pipeline.export.onnx_export import (
    check_parity,
    export_classifier_onnx,
    optimize_onnx,
    quantize_int8,
)

PARITY_ROWS = 64


def export_prefix(job_id: uuid.UUID) -> str:
    return f"{job_prefix(job_id)}/export"


def run_export(ctx: StageContext, job_id: uuid.UUID) -> StageOutcome:
    spec, rows = load_job_rows(ctx, job_id)
    export = spec.export
    assert export is not None
    model_dir = download_job_model(ctx, job_id)
    parity_rows = (rows.test if rows.test is not None else rows.validation)[:PARITY_ROWS]
    texts = [row.text for row in parity_rows]
    out_dir = ctx.job_dir(job_id) / "export"
    max_length = spec.hyperparameters.max_seq_length

    info = export_classifier_onnx(
        model_dir, out_dir / "model.onnx", opset=export.opset, max_length=max_length
    )
    parity = check_parity(model_dir, info.path, texts, tolerance=export.parity_tolerance)
    summary: dict[str, Any] = {
        "opset": info.opset,
        "input_names": info.input_names,
        "labels": info.labels,
        "max_length": max_length,
        "formats": ["onnx"],
        "onnx": {"size_bytes": info.size_bytes, "seconds": info.export_seconds, "parity": parity.as_dict()},
    }
    files = {"model.onnx": info.path}
    if export.optimize:
        optimized = optimize_onnx(
            model_dir, info.path, out_dir / "model.optimized.onnx", texts, export.parity_tolerance
        )
        summary["onnx_optimized"] = {"seconds": optimized.seconds, "parity": optimized.parity.as_dict()}
        summary["formats"].append("onnx_optimized")
        files["model.optimized.onnx"] = optimized.path
    if export.int8:
        try:
            # Quantize the fused graph when there is one: the INT8 kernels then run fused too.
            source = files.get("model.optimized.onnx", info.path)
            quantized = quantize_int8(
                model_dir, source, out_dir / "model.int8.onnx", texts, export.int8_min_label_agreement
            )
        except ExportMismatch as exc:
            # An optional CPU variant that misses its bar is left out, with its figures; the job
            # fails on it only when it was to be served (the publish stage checks).
            summary["onnx_int8"] = {"rejected": exc.message, "parity": exc.details}
        else:
            summary["onnx_int8"] = {"seconds": quantized.seconds, "parity": quantized.parity.as_dict()}
            summary["formats"].append("onnx_int8")
            files["model.int8.onnx"] = quantized.path
    if export.tensorrt:
        summary["tensorrt"] = _tensorrt(
            info, texts, model_dir, export.max_batch_size, max_length, out_dir, files
        )
        if summary["tensorrt"].get("built"):
            summary["formats"].append("tensorrt")
    else:
        summary["tensorrt"] = {"built": False, "skipped": "not requested"}

    prefix = export_prefix(job_id)
    for name, path in files.items():
        ctx.store.put_file(f"{prefix}/{name}", path)
    ctx.store.put_bytes(
        f"{prefix}/export.json", json.dumps(summary, default=str).encode(), "application/json"
    )
    return StageOutcome(result={"export": summary})


def _tensorrt(info, texts, model_dir, max_batch, max_length, out_dir, files) -> dict[str, Any]:  # type: ignore[no-untyped-def]
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
        result = build_tensorrt_engine(
            info.path, out_dir / "engines", info.input_names, profile, parity_feeds=feeds
        )
    except TensorRTUnavailable as exc:
        return {"built": False, "skipped": exc.reason}
    files[f"engines/{result.key}/model.plan"] = result.path
    return {
        "built": True,
        "key": result.key,
        "tensorrt_version": result.tensorrt_version,
        "compute_capability": result.compute_capability,
        "precision_mode": result.precision_mode,
        "fp16": result.fp16,
        "build_seconds": result.build_seconds,
        "build_log": result.build_log[-50:],
        "parity": None
        if result.parity is None
        else {
            "max_abs_logit_diff": result.parity.max_abs_logit_diff,
            "label_agreement": result.parity.label_agreement,
        },
    }
