"""Loading a published version on Triton, in dependency order, through the repository API."""

from __future__ import annotations

from shared.serving.triton_config import (
    config_from_text,
    onnx_model_name,
    tokenizer_model_name,
    trt_model_name,
    vllm_model_name,
)
from shared.serving.triton_control import TritonControl
from shared.storage.base import ObjectStore


def published_models(repository_name: str, formats: list[str]) -> list[str]:
    """The models of one published set, in the order Triton must load them (the ensemble last).

    A causal LM is one generation model (and, on GPU deployments, its vLLM twin); a classifier is
    the tokenizer step, the ONNX model (and TensorRT's), and the ensemble apps call.
    """
    if any(name.startswith("genai_") for name in formats):
        return [repository_name, *([vllm_model_name(repository_name)] if "vllm" in formats else [])]
    models = [tokenizer_model_name(repository_name), onnx_model_name(repository_name)]
    if "tensorrt" in formats:
        models.append(trt_model_name(repository_name))
    models.append(repository_name)
    return models


def load_published_version(
    triton_url: str, repository: ObjectStore, repository_name: str, version: int, formats: list[str]
) -> None:
    """Pin each model of the published set to `version` on the Triton at `triton_url`."""
    control = TritonControl(triton_url)
    try:
        for model in published_models(repository_name, formats):
            config = config_from_text(repository.get_bytes(f"{model}/config.pbtxt").decode())
            control.load_version(model, config, version)
    finally:
        control.close()
