"""Export a fine-tuned sequence classifier to ONNX and check the export against the PyTorch model.

The ONNX file is the portable artifact of a job: Triton's ONNX Runtime backend serves it, the CPU
INT8 variant is derived from it and the TensorRT engines are built from it. Every variant is compared
with the PyTorch model on real rows before anyone serves it, and the comparison is returned so that
the caller can record it with the job.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.pipeline.export.errors import ExportMismatch
from shared.pipeline.labels import labels_from_config

if TYPE_CHECKING:
    import onnxruntime
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

LOGITS_OUTPUT = "logits"
# The order the ONNX graph takes its inputs in; token_type_ids only where the model uses them.
CANDIDATE_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Padded lengths the parity check runs at, besides dynamic padding to the longest row.
DEFAULT_PARITY_LENGTHS = (16, 64, 128)


@dataclass(frozen=True)
class OnnxExportInfo:
    """What was exported: enough for the repository writer to describe the model to Triton."""

    path: Path
    input_names: list[str]
    output_name: str
    opset: int
    num_labels: int
    labels: list[str]
    max_length: int
    size_bytes: int
    export_seconds: float


@dataclass(frozen=True)
class ParityReport:
    """How closely an ONNX variant reproduces the PyTorch model on the same padded batches."""

    max_abs_logit_diff: float
    label_agreement: float
    rows: int
    lengths_tested: list[int]
    # "longest" is dynamic padding; numbers are padding="max_length" to that many tokens.
    paddings_tested: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "max_abs_logit_diff": self.max_abs_logit_diff,
            "label_agreement": self.label_agreement,
            "rows": self.rows,
            "lengths_tested": self.lengths_tested,
            "paddings_tested": self.paddings_tested,
        }


@dataclass(frozen=True)
class VariantResult:
    """A derived ONNX file (optimized or quantized) with its own parity figures."""

    path: Path
    parity: ParityReport
    seconds: float


def _logits_module(model: PreTrainedModel) -> torch.nn.Module:
    """Wrap the classifier so that it returns only the logits tensor.

    The Hugging Face forward returns a ModelOutput; the exporter wants the one named output.
    token_type_ids is optional so that models without segment embeddings export with two inputs.
    """
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor | None = None,
        ) -> torch.Tensor:
            segments = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            logits: torch.Tensor = model(
                input_ids=input_ids, attention_mask=attention_mask, **segments
            ).logits
            return logits

    return LogitsOnly()


def model_input_names(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The inputs both the tokenizer produces and the model's forward accepts, in graph order."""
    accepted = inspect.signature(model.forward).parameters
    produced = set(tokenizer.model_input_names)
    return [name for name in CANDIDATE_INPUTS if name in accepted and name in produced]


def _load_classifier(model_dir: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model: PreTrainedModel = AutoModelForSequenceClassification.from_pretrained(model_dir)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return model, tokenizer


def export_classifier_onnx(
    model_dir: Path, output_path: Path, opset: int = 18, max_length: int = 128
) -> OnnxExportInfo:
    """Export the classifier in `model_dir` to one self-contained ONNX file with dynamic axes.

    `max_length` is the longest sequence the served model is meant for; it bounds the example the
    exporter traces and is recorded for the tokenizer step and the TensorRT profile, while the graph
    itself accepts any batch and any length up to the model's position embeddings.
    """
    import torch

    started = time.perf_counter()
    model, tokenizer = _load_classifier(model_dir)
    input_names = model_input_names(model, tokenizer)
    max_positions = int(getattr(model.config, "max_position_embeddings", 512))
    if max_length > max_positions:
        raise ValueError(f"max_length {max_length} exceeds the model's {max_positions} positions")

    # dynamo specializes a dimension traced at size 1, so the example has batch 2 and several tokens.
    example = tokenizer(
        ["an example sentence for tracing", "another one"],
        padding="max_length",
        max_length=min(16, max_length),
        truncation=True,
        return_tensors="pt",
    )
    batch = torch.export.Dim("batch", min=1, max=65536)
    sequence = torch.export.Dim("sequence", min=1, max=max_positions)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            _logits_module(model),
            tuple(example[name] for name in input_names),
            output_path,
            input_names=input_names,
            output_names=[LOGITS_OUTPUT],
            dynamic_shapes={name: {0: batch, 1: sequence} for name in input_names},
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    labels = labels_from_config(model.config)
    return OnnxExportInfo(
        path=output_path,
        input_names=input_names,
        output_name=LOGITS_OUTPUT,
        opset=opset,
        num_labels=len(labels),
        labels=labels,
        max_length=max_length,
        size_bytes=output_path.stat().st_size,
        export_seconds=time.perf_counter() - started,
    )


def cpu_session(onnx_path: Path, threads: int | None = None) -> onnxruntime.InferenceSession:
    """An ONNX Runtime CPU session; `threads` pins intra-op threads (None: ORT's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def compare_with_pytorch(
    model_dir: Path,
    onnx_path: Path,
    texts: Sequence[str],
    lengths: Sequence[int] = DEFAULT_PARITY_LENGTHS,
    batch_size: int = 8,
) -> ParityReport:
    """Run the PyTorch model and the ONNX file on the same padded batches and measure the gap.

    Each length pads (and truncates) every batch to that many tokens, so padding positions and the
    attention mask are exercised; one more pass pads dynamically to the longest row of each batch.
    """
    import torch

    if not texts:
        raise ValueError("the parity check needs at least one text")
    model, tokenizer = _load_classifier(model_dir)
    input_names = model_input_names(model, tokenizer)
    session = cpu_session(onnx_path)
    paddings: list[tuple[str, dict[str, Any]]] = [
        (str(length), {"padding": "max_length", "max_length": length, "truncation": True})
        for length in lengths
    ]
    paddings.append(("longest", {"padding": "longest", "max_length": max(lengths), "truncation": True}))

    max_diff = 0.0
    agreeing = 0
    compared = 0
    for _, padding in paddings:
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            encoded = tokenizer(batch, return_tensors="np", **padding)
            feeds = {name: encoded[name].astype(np.int64) for name in input_names}
            with torch.no_grad():
                reference = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
            exported = session.run([LOGITS_OUTPUT], feeds)[0]
            max_diff = max(max_diff, float(np.abs(reference - exported).max()))
            agreeing += int((reference.argmax(-1) == exported.argmax(-1)).sum())
            compared += len(batch)
    return ParityReport(
        max_abs_logit_diff=max_diff,
        label_agreement=agreeing / compared,
        rows=len(texts),
        lengths_tested=list(lengths),
        paddings_tested=[name for name, _ in paddings],
    )


def check_parity(
    model_dir: Path,
    onnx_path: Path,
    texts: Sequence[str],
    tolerance: float = 1e-3,
    lengths: Sequence[int] = DEFAULT_PARITY_LENGTHS,
) -> ParityReport:
    """Compare the FP32 export with PyTorch; raise ExportMismatch beyond `tolerance` on any logit."""
    report = compare_with_pytorch(model_dir, onnx_path, texts, lengths)
    if report.max_abs_logit_diff > tolerance:
        raise ExportMismatch(
            f"ONNX logits differ from PyTorch by {report.max_abs_logit_diff:.2e} (tolerance {tolerance:.0e})",
            details=report.as_dict(),
        )
    return report


# Encoder architectures ONNX Runtime's transformer optimizer knows how to fuse.
FUSABLE_MODEL_TYPES = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "distilbert": "bert",
    "electra": "bert",
}


def optimize_onnx(
    model_dir: Path,
    onnx_path: Path,
    output_path: Path,
    texts: Sequence[str],
    tolerance: float = 1e-3,
    lengths: Sequence[int] = DEFAULT_PARITY_LENGTHS,
) -> VariantResult:
    """A CPU-serving graph with ONNX Runtime's transformer fusions, checked against PyTorch.

    For BERT-family encoders the model is traced again with eager attention by the TorchScript
    exporter, whose graph ONNX Runtime's transformer optimizer recognizes: it fuses the embeddings,
    each attention block, GELU and skip layer norms into ONNX Runtime's own kernels (the dynamo
    export of the same model fuses only GELU and layer norms). Other architectures get ONNX
    Runtime's EXTENDED graph optimizations of the portable export. Either way the result is for
    ONNX Runtime only: TensorRT builds from the plain export.
    """
    import onnxruntime as ort

    started = time.perf_counter()
    output_path.parent.mkdir(parents=True, exist_ok=True)
    model_type = FUSABLE_MODEL_TYPES.get(_model_type(model_dir))
    if model_type is not None:
        _fused_transformer_graph(model_dir, output_path, model_type)
    else:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(output_path)
        ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    seconds = time.perf_counter() - started
    report = check_parity(model_dir, output_path, texts, tolerance, lengths)
    return VariantResult(path=output_path, parity=report, seconds=seconds)


def _model_type(model_dir: Path) -> str:
    import json

    return str(json.loads((model_dir / "config.json").read_text()).get("model_type", ""))


def _fused_transformer_graph(model_dir: Path, output_path: Path, model_type: str) -> None:
    import tempfile

    import torch
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    input_names = model_input_names(model, tokenizer)
    example = tokenizer(
        ["an example sentence for tracing", "another one"],
        padding="max_length",
        max_length=16,
        truncation=True,
        return_tensors="pt",
    )
    with tempfile.TemporaryDirectory() as scratch:
        traced = Path(scratch) / "traced.onnx"
        with torch.no_grad():
            torch.onnx.export(
                _logits_module(model),
                tuple(example[name] for name in input_names),
                str(traced),
                input_names=input_names,
                output_names=[LOGITS_OUTPUT],
                dynamic_axes={name: {0: "batch", 1: "sequence"} for name in input_names},
                opset_version=17,
                dynamo=False,
            )
        config = model.config
        optimized = optimize_model(
            str(traced),
            model_type=model_type,
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
        )
        optimized.save_model_to_file(str(output_path))


def quantize_int8(
    model_dir: Path,
    onnx_path: Path,
    output_path: Path,
    texts: Sequence[str],
    min_label_agreement: float = 0.99,
    lengths: Sequence[int] = DEFAULT_PARITY_LENGTHS,
) -> VariantResult:
    """Dynamic INT8 quantization of the weights for CPU serving, judged by label agreement.

    INT8 logits move by far more than an FP32 tolerance, so the logit gap is recorded but the gate
    is the share of rows whose label matches PyTorch.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    started = time.perf_counter()
    graph = onnx.load(str(onnx_path))
    # The dynamo exporter records value_info with symbolic shapes that the quantizer's own shape
    # inference then contradicts; dropping it lets the quantizer infer shapes afresh.
    del graph.graph.value_info[:]
    output_path.parent.mkdir(parents=True, exist_ok=True)
    # ONNX shape inference knows nothing of ONNX Runtime's fused operators (Attention, ...), so
    # tensors after them have no inferred type; in these graphs they are all float.
    quantize_dynamic(
        graph,
        output_path,
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    seconds = time.perf_counter() - started
    report = compare_with_pytorch(model_dir, output_path, texts, lengths)
    if report.label_agreement < min_label_agreement:
        raise ExportMismatch(
            f"INT8 labels agree with PyTorch on {report.label_agreement:.1%} of rows "
            f"(needed {min_label_agreement:.1%})",
            details=report.as_dict(),
        )
    return VariantResult(path=output_path, parity=report, seconds=seconds)


@dataclass(frozen=True)
class Latency:
    """CPU serving latency of one ONNX file on real texts padded to one shape."""

    batch_size: int
    sequence_length: int
    threads: int
    p50_ms: float
    p95_ms: float
    runs: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "batch_size": self.batch_size,
            "sequence_length": self.sequence_length,
            "threads": self.threads,
            "p50_ms": round(self.p50_ms, 3),
            "p95_ms": round(self.p95_ms, 3),
            "runs": self.runs,
        }


def measure_latency(
    onnx_path: Path,
    tokenizer_dir: Path,
    texts: Sequence[str],
    sequence_length: int,
    batch_size: int = 1,
    threads: int = 2,
    runs: int = 30,
    warmup: int = 3,
) -> Latency:
    """p50/p95 of `session.run` on batches of `texts` padded to `sequence_length` tokens.

    Every model measured this way sees the same shape, so two models with different tokenizers (a
    teacher and its student) are compared on equal work.
    """
    from transformers import AutoTokenizer

    if not texts:
        raise ValueError("latency needs at least one text")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    session = cpu_session(onnx_path, threads=threads)
    input_names = [graph_input.name for graph_input in session.get_inputs()]
    batch = [texts[index % len(texts)] for index in range(batch_size)]
    encoded = tokenizer(
        batch, padding="max_length", truncation=True, max_length=sequence_length, return_tensors="np"
    )
    feeds = {name: encoded[name].astype(np.int64) for name in input_names}
    for _ in range(warmup):
        session.run([LOGITS_OUTPUT], feeds)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run([LOGITS_OUTPUT], feeds)
        timings.append((time.perf_counter() - started) * 1000.0)
    p50, p95 = np.percentile(timings, [50, 95])
    return Latency(batch_size, sequence_length, threads, float(p50), float(p95), runs)
