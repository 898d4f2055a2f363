from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from shared.pipeline.export.errors import ExportMismatch
from shared.pipeline.export.onnx_export import (
    OnnxExportInfo,
    check_parity,
    cpu_session,
    optimize_onnx,
    quantize_int8,
)


def test_export_is_one_file_with_named_inputs_and_dynamic_batch_and_sequence(
    exported: OnnxExportInfo,
) -> None:
    graph = onnx.load(str(exported.path)).graph
    assert [tensor.name for tensor in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [tensor.name for tensor in graph.output] == ["logits"]
    for tensor in graph.input:
        dims = tensor.type.tensor_type.shape.dim
        assert [dim.HasField("dim_param") for dim in dims] == [True, True]
    assert not list(exported.path.parent.glob("*.data")), "weights must live inside model.onnx"
    assert exported.labels == ["ham", "spam"]
    # A batch and a length that differ from the traced example both run.
    session = cpu_session(exported.path)
    feeds = {name: torch.ones(5, 77, dtype=torch.int64).numpy() for name in exported.input_names}
    assert session.run(["logits"], feeds)[0].shape == (5, 2)


def test_parity_with_pytorch_on_real_rows_at_several_padded_lengths(
    classifier_dir: Path, exported: OnnxExportInfo, parity_texts: list[str]
) -> None:
    report = check_parity(classifier_dir, exported.path, parity_texts, tolerance=1e-3)

    assert report.max_abs_logit_diff <= 1e-3
    assert report.label_agreement == 1.0
    assert report.rows == len(parity_texts)
    assert report.lengths_tested == [16, 64, 128]
    assert "longest" in report.paddings_tested


def test_parity_check_refuses_an_onnx_file_from_another_model(
    classifier_dir: Path, exported: OnnxExportInfo, parity_texts: list[str], tmp_path: Path
) -> None:
    changed_dir = tmp_path / "changed"
    shutil.copytree(classifier_dir, changed_dir)
    model = AutoModelForSequenceClassification.from_pretrained(changed_dir)
    with torch.no_grad():
        model.classifier.bias += 0.5
    model.save_pretrained(changed_dir)

    with pytest.raises(ExportMismatch) as raised:
        check_parity(changed_dir, exported.path, parity_texts[:8])

    assert raised.value.code == "export_mismatch"
    assert raised.value.details["max_abs_logit_diff"] > 0.4


def test_optimized_graph_keeps_fp32_parity(
    classifier_dir: Path, exported: OnnxExportInfo, parity_texts: list[str], tmp_path: Path
) -> None:
    result = optimize_onnx(classifier_dir, exported.path, tmp_path / "model.opt.onnx", parity_texts)

    assert result.path.is_file()
    # BERT's attention blocks and embeddings run as ONNX Runtime's fused kernels.
    operators = {node.op_type for node in onnx.load(str(result.path)).graph.node}
    assert {"Attention", "EmbedLayerNormalization", "SkipLayerNormalization"} <= operators
    assert result.parity.max_abs_logit_diff <= 1e-3
    assert result.parity.label_agreement == 1.0


def test_int8_variant_is_smaller_and_keeps_labels(
    classifier_dir: Path, exported: OnnxExportInfo, parity_texts: list[str], tmp_path: Path
) -> None:
    result = quantize_int8(classifier_dir, exported.path, tmp_path / "model.int8.onnx", parity_texts)

    assert result.parity.label_agreement >= 0.99
    # INT8 moves the logits: the gap is recorded, and it is real (not a copy of the FP32 file).
    assert result.parity.max_abs_logit_diff > 0
    assert any(node.op_type == "DynamicQuantizeLinear" for node in onnx.load(str(result.path)).graph.node)
    assert result.path.stat().st_size < exported.path.stat().st_size
