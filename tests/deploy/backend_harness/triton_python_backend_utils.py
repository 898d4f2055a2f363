"""A stand-in for the `triton_python_backend_utils` module that Triton's Python backend provides.

Only numpy: it runs inside an environment holding exactly the Triton image's extra packages
(deploy/docker/triton/requirements.txt), where nothing of Temper's own environment is importable.
"""

from __future__ import annotations

import numpy as np

TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1


class TritonError:
    INVALID_ARG = 3
    INTERNAL = 13
    CANCELLED = 1

    def __init__(self, message: str, code: int = 13) -> None:
        self._message, self._code = message, code

    def message(self) -> str:
        return self._message

    def code(self) -> int:
        return self._code


class TritonModelException(Exception):
    pass


class Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name, self._array = name, np.asarray(array)

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class ResponseSender:
    """What a decoupled model sends its responses through; it keeps them, with their flags."""

    def __init__(self) -> None:
        self.sent: list[tuple[InferenceResponse, int]] = []

    def send(self, response: InferenceResponse | None = None, flags: int = 0) -> None:
        self.sent.append((response, flags))

    def is_cancelled(self) -> bool:
        return False


class InferenceRequest:
    def __init__(self, inputs: list[Tensor], requested_output_names: list[str] | None = None) -> None:
        self._inputs = inputs
        self._requested = requested_output_names or []
        self.sender = ResponseSender()

    def get_response_sender(self) -> ResponseSender:
        return self.sender

    def inputs(self) -> list[Tensor]:
        return self._inputs

    def requested_output_names(self) -> list[str]:
        return self._requested


class InferenceResponse:
    def __init__(self, output_tensors: list[Tensor] | None = None, error: TritonError | None = None) -> None:
        self._outputs, self._error = output_tensors or [], error

    def output_tensors(self) -> list[Tensor]:
        return self._outputs

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> TritonError | None:
        return self._error


def _by_name(tensors: list[Tensor], name: str) -> Tensor | None:
    return next((tensor for tensor in tensors if tensor.name() == name), None)


def get_input_tensor_by_name(request: InferenceRequest, name: str) -> Tensor | None:
    return _by_name(request.inputs(), name)


def get_output_tensor_by_name(response: InferenceResponse, name: str) -> Tensor | None:
    return _by_name(response.output_tensors(), name)


def get_output_config_by_name(model_config: dict, name: str) -> dict | None:
    return next((output for output in model_config.get("output", []) if output["name"] == name), None)


def triton_string_to_numpy(data_type: str) -> type:
    return {"TYPE_STRING": np.object_, "TYPE_INT64": np.int64, "TYPE_FP32": np.float32}[data_type]


def using_decoupled_model_transaction_policy(model_config: dict) -> bool:
    return bool(model_config.get("model_transaction_policy", {}).get("decoupled", False))
