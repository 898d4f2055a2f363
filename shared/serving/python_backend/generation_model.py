"""Triton Python-backend model: a causal LM generating with ONNX Runtime GenAI, streamed (decoupled).

Shipped as `<name>/<version>/model.py`, with `genai_stream.py` (the generation loop, the chat
template and the stop rules, shared with the embedded runner) beside it and the exported model in
`<version>/genai/` (ONNX model, genai_config.json, tokenizer, chat_template.jinja).

Tensors (config built by shared/serving/triton_config.py, `generation_model_config`):
    REQUEST        TYPE_STRING [1]  the request as UTF-8 JSON (see genai_stream.py)
    TEXT           TYPE_STRING [1]  a chunk of the answer, in every response
    FINISHED       TYPE_BOOL   [1]  true in the last response of a request only
    FINISH_REASON  TYPE_STRING [1]  "" until the last response: "eos", "length" or "stop"

The last response is sent with TRITONSERVER_RESPONSE_COMPLETE_FINAL, so gRPC streaming clients also
see `triton_final_response`. A bad request ends with one error response (INVALID_ARG); a request the
client cancels ends with a CANCELLED error response, as Triton asks of decoupled models.
"""

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

REQUEST_INPUT = "REQUEST"
TEXT_OUTPUT = "TEXT"
FINISHED_OUTPUT = "FINISHED"
FINISH_REASON_OUTPUT = "FINISH_REASON"
GENERATION_CORE = "genai_stream.py"
GENAI_SUBDIR = "genai"


def _load_generation_core(version_dir: Path) -> ModuleType:
    """Import genai_stream.py from this version's folder by path: Triton puts no model folder on
    sys.path, and a by-path import keeps two loaded versions from sharing one module."""
    spec = importlib.util.spec_from_file_location(
        f"temper_genai_stream_{abs(hash(str(version_dir)))}", version_dir / GENERATION_CORE
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {version_dir / GENERATION_CORE}")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: its dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        model_config = json.loads(args["model_config"])
        if not pb_utils.using_decoupled_model_transaction_policy(model_config):
            raise pb_utils.TritonModelException(
                f"{args['model_name']} streams its answers: set model_transaction_policy {{ decoupled: true }}"
            )
        parameters = {key: value["string_value"] for key, value in model_config.get("parameters", {}).items()}
        version_dir = Path(args["model_repository"]) / args["model_version"]
        self.core = _load_generation_core(version_dir)
        self.default_max_new_tokens = int(parameters.get("default_max_new_tokens", "256"))
        self.max_new_tokens_limit = int(parameters.get("max_new_tokens_limit", "1024"))
        threads = int(parameters.get("threads", "0")) or None
        self.generator = self.core.GenAIGenerator(version_dir / GENAI_SUBDIR, threads=threads)

    def execute(self, requests: list) -> None:
        # Requests run one after another on this instance; config's instance_group count sets how many
        # generate at once.
        for request in requests:
            self._generate(request)
        return None

    def _generate(self, request: Any) -> None:
        sender = request.get_response_sender()
        final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        try:
            raw = pb_utils.get_input_tensor_by_name(request, REQUEST_INPUT).as_numpy().reshape(-1)[0]
            generation = self.core.GenerationRequest.from_json(
                raw, self.default_max_new_tokens, self.max_new_tokens_limit
            )
            chunks = self.generator.stream(generation, is_cancelled=sender.is_cancelled)
            for chunk in chunks:
                if chunk.finish_reason == "cancelled":
                    error = pb_utils.TritonError("the request was cancelled", pb_utils.TritonError.CANCELLED)
                    sender.send(pb_utils.InferenceResponse(error=error), flags=final)
                    return
                sender.send(_chunk_response(chunk), flags=final if chunk.finished else 0)
        except self.core.RequestError as error:
            invalid = pb_utils.TritonError(str(error), pb_utils.TritonError.INVALID_ARG)
            sender.send(pb_utils.InferenceResponse(error=invalid), flags=final)
        except Exception as error:  # any failure must still end this request's stream
            failed = pb_utils.TritonError(f"generation failed: {error}", pb_utils.TritonError.INTERNAL)
            sender.send(pb_utils.InferenceResponse(error=failed), flags=final)

    def finalize(self) -> None:
        self.generator = None


def _chunk_response(chunk: Any) -> Any:
    return pb_utils.InferenceResponse(
        output_tensors=[
            pb_utils.Tensor(TEXT_OUTPUT, np.array([chunk.text.encode("utf-8")], dtype=np.object_)),
            pb_utils.Tensor(FINISHED_OUTPUT, np.array([chunk.finished], dtype=np.bool_)),
            pb_utils.Tensor(
                FINISH_REASON_OUTPUT,
                np.array([(chunk.finish_reason or "").encode("utf-8")], dtype=np.object_),
            ),
        ]
    )
