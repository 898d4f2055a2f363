"""Triton model configurations for published models, built with Triton's own protobuf.

Four models serve one classifier: `<name>_tokenizer` (Python backend, text to token ids),
`<name>_onnx` (ONNX Runtime), `<name>_trt` (TensorRT, only where an engine was built) and `<name>`,
the ensemble that apps call with raw text. With `max_batch_size > 0` Triton adds the batch dimension
itself, so every `dims` below leaves it out.

A causal LM is served by `<name>`, a decoupled Python-backend model generating with ONNX Runtime
GenAI on CPU (one JSON request in, a stream of text chunks out), and on GPU deployments by
`<name>_vllm`, a model of Triton's vLLM backend over the merged safetensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from shared.pipeline.export.onnx_export import LOGITS_OUTPUT

TEXT_INPUT = "TEXT"
LABELS_FILENAME = "labels.txt"
TOKENIZER_SUFFIX = "_tokenizer"
ONNX_SUFFIX = "_onnx"
TRT_SUFFIX = "_trt"
ONNX_PLATFORM = "onnxruntime_onnx"
TRT_PLATFORM = "tensorrt_plan"
ENSEMBLE_PLATFORM = "ensemble"
PYTHON_BACKEND = "python"
VLLM_BACKEND = "vllm"
VLLM_SUFFIX = "_vllm"
# The generation model's tensors (see shared/serving/python_backend/genai_stream.py for the request).
GENERATION_REQUEST_INPUT = "REQUEST"
GENERATION_TEXT_OUTPUT = "TEXT"
GENERATION_FINISHED_OUTPUT = "FINISHED"
GENERATION_FINISH_REASON_OUTPUT = "FINISH_REASON"
# vLLM backend's own tensor names.
VLLM_TEXT_INPUT = "text_input"
VLLM_TEXT_OUTPUT = "text_output"
# Triton's default file name in a version folder, by platform or backend.
DEFAULT_MODEL_FILENAMES = {
    ONNX_PLATFORM: "model.onnx",
    TRT_PLATFORM: "model.plan",
    PYTHON_BACKEND: "model.py",
}


@dataclass(frozen=True)
class ServingOptions:
    """How Triton schedules the model; the defaults suit a CPU deployment of a small encoder."""

    max_batch_size: int = 32
    max_sequence_length: int = 128
    preferred_batch_sizes: tuple[int, ...] = (8, 16, 32)
    max_queue_delay_microseconds: int = 2000
    instance_count: int = 1
    instance_kind: Literal["cpu", "gpu"] = "cpu"
    response_cache: bool = False
    # Which model the ensemble routes to: the portable ONNX or the TensorRT engine.
    ensemble_target: Literal["onnx", "trt"] = "onnx"

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1: the ensemble sends [batch, 1] text")
        if any(size > self.max_batch_size for size in self.preferred_batch_sizes):
            raise ValueError("preferred batch sizes cannot exceed max_batch_size")


def tokenizer_model_name(name: str) -> str:
    return f"{name}{TOKENIZER_SUFFIX}"


def onnx_model_name(name: str) -> str:
    return f"{name}{ONNX_SUFFIX}"


def trt_model_name(name: str) -> str:
    return f"{name}{TRT_SUFFIX}"


def _token_tensors(input_names: Sequence[str]) -> list[mc.ModelInput]:
    return [mc.ModelInput(name=name, data_type=mc.TYPE_INT64, dims=[-1]) for name in input_names]


def _scheduling(config: mc.ModelConfig, options: ServingOptions) -> None:
    config.dynamic_batching.CopyFrom(
        mc.ModelDynamicBatching(
            preferred_batch_size=list(options.preferred_batch_sizes),
            max_queue_delay_microseconds=options.max_queue_delay_microseconds,
        )
    )
    kind = (
        mc.ModelInstanceGroup.KIND_GPU if options.instance_kind == "gpu" else mc.ModelInstanceGroup.KIND_CPU
    )
    config.instance_group.append(mc.ModelInstanceGroup(count=options.instance_count, kind=kind))
    if options.response_cache:
        config.response_cache.enable = True


def _logits_output(num_labels: int) -> mc.ModelOutput:
    # label_filename lets Triton's classification extension answer "score:index:label".
    return mc.ModelOutput(
        name=LOGITS_OUTPUT, data_type=mc.TYPE_FP32, dims=[num_labels], label_filename=LABELS_FILENAME
    )


def onnx_model_config(
    name: str, input_names: Sequence[str], num_labels: int, options: ServingOptions
) -> mc.ModelConfig:
    config = mc.ModelConfig(
        name=onnx_model_name(name), platform=ONNX_PLATFORM, max_batch_size=options.max_batch_size
    )
    config.input.extend(_token_tensors(input_names))
    config.output.append(_logits_output(num_labels))
    _scheduling(config, options)
    return config


def trt_model_config(
    name: str,
    input_names: Sequence[str],
    num_labels: int,
    options: ServingOptions,
    engine_filenames: Mapping[str, str],
) -> mc.ModelConfig:
    """`engine_filenames` maps a compute capability ("9.0") to the engine file built for it."""
    config = mc.ModelConfig(
        name=trt_model_name(name), platform=TRT_PLATFORM, max_batch_size=options.max_batch_size
    )
    config.input.extend(_token_tensors(input_names))
    config.output.append(_logits_output(num_labels))
    config.cc_model_filenames.update(engine_filenames)
    _scheduling(config, options)
    return config


def tokenizer_model_config(name: str, input_names: Sequence[str], options: ServingOptions) -> mc.ModelConfig:
    config = mc.ModelConfig(
        name=tokenizer_model_name(name), backend=PYTHON_BACKEND, max_batch_size=options.max_batch_size
    )
    config.input.append(mc.ModelInput(name=TEXT_INPUT, data_type=mc.TYPE_STRING, dims=[1]))
    config.output.extend(
        mc.ModelOutput(name=name, data_type=mc.TYPE_INT64, dims=[-1]) for name in input_names
    )
    config.parameters["max_length"].string_value = str(options.max_sequence_length)
    # Tokenizing is cheap and CPU-bound; it runs on CPU even where the classifier has a GPU.
    config.instance_group.append(
        mc.ModelInstanceGroup(count=options.instance_count, kind=mc.ModelInstanceGroup.KIND_CPU)
    )
    return config


def ensemble_model_config(
    name: str, input_names: Sequence[str], num_labels: int, options: ServingOptions
) -> mc.ModelConfig:
    """text → tokenizer → classifier → logits; the latest loaded version of each step serves."""
    classifier = trt_model_name(name) if options.ensemble_target == "trt" else onnx_model_name(name)
    config = mc.ModelConfig(name=name, platform=ENSEMBLE_PLATFORM, max_batch_size=options.max_batch_size)
    config.input.append(mc.ModelInput(name=TEXT_INPUT, data_type=mc.TYPE_STRING, dims=[1]))
    config.output.append(_logits_output(num_labels))
    tokenize = mc.ModelEnsembling.Step(model_name=tokenizer_model_name(name), model_version=-1)
    tokenize.input_map[TEXT_INPUT] = TEXT_INPUT
    classify = mc.ModelEnsembling.Step(model_name=classifier, model_version=-1)
    for tensor in input_names:
        tokenize.output_map[tensor] = tensor
        classify.input_map[tensor] = tensor
    classify.output_map[LOGITS_OUTPUT] = LOGITS_OUTPUT
    config.ensemble_scheduling.step.extend([tokenize, classify])
    if options.response_cache:
        config.response_cache.enable = True
    return config


@dataclass(frozen=True)
class GenerationServingOptions:
    """How Triton runs the ONNX Runtime GenAI generation model (CPU)."""

    # Each instance generates for one request at a time; more instances serve requests in parallel.
    instance_count: int = 1
    # Intra-op threads of each instance's ONNX Runtime session; 0 lets ONNX Runtime choose.
    threads: int = 0
    default_max_new_tokens: int = 256
    max_new_tokens_limit: int = 1024

    def __post_init__(self) -> None:
        if self.instance_count < 1 or self.threads < 0:
            raise ValueError("instance_count must be at least 1 and threads at least 0")
        if not 1 <= self.default_max_new_tokens <= self.max_new_tokens_limit:
            raise ValueError("default_max_new_tokens must be from 1 to max_new_tokens_limit")


def vllm_model_name(name: str) -> str:
    return f"{name}{VLLM_SUFFIX}"


def _decoupled(config: mc.ModelConfig) -> None:
    config.model_transaction_policy.CopyFrom(mc.ModelTransactionPolicy(decoupled=True))


def generation_model_config(name: str, precision: str, options: GenerationServingOptions) -> mc.ModelConfig:
    """One JSON request in (`REQUEST`), any number of responses out, each a chunk of text.

    Decoupled: the model streams responses through its response sender and Triton's gRPC streaming
    API (ModelStreamInfer) delivers them; the last one has `FINISHED` true and the reason in
    `FINISH_REASON` ("eos", "length", "stop", "cancelled"). No Triton batching (max_batch_size 0):
    requests of different lengths gain nothing from being stacked on CPU, so the dims are the
    tensors' full shapes.
    """
    config = mc.ModelConfig(name=name, backend=PYTHON_BACKEND, max_batch_size=0)
    config.input.append(mc.ModelInput(name=GENERATION_REQUEST_INPUT, data_type=mc.TYPE_STRING, dims=[1]))
    config.output.extend(
        [
            mc.ModelOutput(name=GENERATION_TEXT_OUTPUT, data_type=mc.TYPE_STRING, dims=[1]),
            mc.ModelOutput(name=GENERATION_FINISHED_OUTPUT, data_type=mc.TYPE_BOOL, dims=[1]),
            mc.ModelOutput(name=GENERATION_FINISH_REASON_OUTPUT, data_type=mc.TYPE_STRING, dims=[1]),
        ]
    )
    _decoupled(config)
    config.instance_group.append(
        mc.ModelInstanceGroup(count=options.instance_count, kind=mc.ModelInstanceGroup.KIND_CPU)
    )
    for key, value in (
        ("precision", precision),
        ("threads", options.threads),
        ("default_max_new_tokens", options.default_max_new_tokens),
        ("max_new_tokens_limit", options.max_new_tokens_limit),
    ):
        config.parameters[key].string_value = str(value)
    return config


def vllm_model_config(name: str) -> mc.ModelConfig:
    """Triton's vLLM backend: vLLM batches on its own (max_batch_size 0), streams (decoupled), and
    takes the GPUs it is given (KIND_MODEL). Engine arguments live in `<version>/model.json`.

    `text_input` is the prompt as it reaches vLLM: the backend applies no chat template, so callers
    send the prompt rendered with the model's `chat_template.jinja` (stored with the merged model).
    """
    config = mc.ModelConfig(name=vllm_model_name(name), backend=VLLM_BACKEND, max_batch_size=0)
    config.input.extend(
        [
            mc.ModelInput(name=VLLM_TEXT_INPUT, data_type=mc.TYPE_STRING, dims=[1]),
            mc.ModelInput(name="stream", data_type=mc.TYPE_BOOL, dims=[1], optional=True),
            mc.ModelInput(name="sampling_parameters", data_type=mc.TYPE_STRING, dims=[1], optional=True),
            mc.ModelInput(name="exclude_input_in_output", data_type=mc.TYPE_BOOL, dims=[1], optional=True),
        ]
    )
    config.output.append(mc.ModelOutput(name=VLLM_TEXT_OUTPUT, data_type=mc.TYPE_STRING, dims=[-1]))
    _decoupled(config)
    config.instance_group.append(mc.ModelInstanceGroup(count=1, kind=mc.ModelInstanceGroup.KIND_MODEL))
    return config


def config_to_text(config: mc.ModelConfig) -> str:
    return text_format.MessageToString(config)


def config_from_text(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())
