"""A stand-in for Triton Inference Server that speaks Triton's real gRPC protocol.

Triton cannot run here, so tests serve the published repository with this server instead. It reads
the repository the way Triton does in explicit model-control mode: config.pbtxt parsed with
Triton's protobuf, numeric version folders chosen by the version policy, Triton's default file names,
dims that leave out the batch dimension when max_batch_size > 0, input data types checked on every
request, ensemble steps wired by their input/output maps, and labels files for the classification
extension. ONNX models run on ONNX Runtime; Python-backend models run their own `model.py` behind a
minimal `triton_python_backend_utils`. Load and unload calls are recorded in order.

Decoupled models (`model_transaction_policy { decoupled: true }`) answer only on the bidirectional
ModelStreamInfer RPC, as in Triton: their `execute` gets a response sender per request, runs on its
own thread, may send any number of responses and ends with TRITONSERVER_RESPONSE_COMPLETE_FINAL.
Every streamed response carries the `triton_final_response` parameter; a final flag sent without a
response reaches the client only when it asked for empty final responses. A client that cancels its
stream makes `is_cancelled()` true for the model. Unlike Triton, one stream's requests run one after
another.
"""

from __future__ import annotations

import importlib.util
import queue
import sys
import threading
import types
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

TRITON_DATATYPES = {
    mc.TYPE_INT64: ("INT64", np.int64),
    mc.TYPE_INT32: ("INT32", np.int32),
    mc.TYPE_FP32: ("FP32", np.float32),
    mc.TYPE_FP16: ("FP16", np.float16),
    mc.TYPE_BOOL: ("BOOL", np.bool_),
    mc.TYPE_STRING: ("BYTES", np.object_),
}
ONNX_ELEMENT_TYPES = {1: mc.TYPE_FP32, 6: mc.TYPE_INT32, 7: mc.TYPE_INT64, 9: mc.TYPE_BOOL, 10: mc.TYPE_FP16}
DEFAULT_FILENAMES = {"onnxruntime_onnx": "model.onnx", "python": "model.py"}
Tensors = dict[str, np.ndarray]
# How long a decoupled model may take between two responses before the stub gives up on it.
DECOUPLED_RESPONSE_TIMEOUT_S = 120.0
RESPONSE_COMPLETE_FINAL = 1


class ModelError(Exception):
    """A model that Triton would refuse to load or a request it would refuse to run."""


@dataclass(frozen=True)
class StreamedResponse:
    """One response of a decoupled model: output tensors or an error, and whether it is the last."""

    tensors: Tensors | None
    error: str | None
    final: bool


def _python_backend_utils() -> types.ModuleType:
    """What the published model.py files use of `triton_python_backend_utils`: tensors, requests,
    responses and errors, and for decoupled models the response sender and its flags."""
    module = types.ModuleType("triton_python_backend_utils")

    class TritonModelException(Exception):
        pass

    class InferenceResponseSender:
        """Hands each response to the stream; refuses anything after the final flag, as Triton does."""

        def __init__(
            self, deliver: Callable[[StreamedResponse], None], is_cancelled: Callable[[], bool]
        ) -> None:
            self._deliver, self._is_cancelled = deliver, is_cancelled
            self._closed = False

        def send(self, response: object = None, flags: int = 0) -> None:
            if self._closed:
                raise TritonModelException("the response sender was closed by a final flag")
            final = bool(flags & RESPONSE_COMPLETE_FINAL)
            if response is None and not final:
                raise TritonModelException("send() without a response needs the final flag")
            if response is None:
                streamed = StreamedResponse(tensors=None, error=None, final=True)
            elif response.has_error():  # type: ignore[attr-defined]
                streamed = StreamedResponse(None, response.error().message(), final)  # type: ignore[attr-defined]
            else:
                tensors = {tensor.name(): tensor.as_numpy() for tensor in response.output_tensors()}  # type: ignore[attr-defined]
                streamed = StreamedResponse(tensors=tensors, error=None, final=final)
            self._closed = final
            self._deliver(streamed)

        def is_cancelled(self) -> bool:
            return self._is_cancelled()

    class Tensor:
        def __init__(self, name: str, array: np.ndarray) -> None:
            self._name, self._array = name, array

        def name(self) -> str:
            return self._name

        def as_numpy(self) -> np.ndarray:
            return self._array

    class InferenceRequest:
        def __init__(self, inputs: list[Tensor], sender: InferenceResponseSender | None = None) -> None:
            self._inputs, self._sender = inputs, sender

        def inputs(self) -> list[Tensor]:
            return self._inputs

        def get_response_sender(self) -> InferenceResponseSender:
            if self._sender is None:
                raise TritonModelException("only decoupled models get a response sender here")
            return self._sender

        def is_cancelled(self) -> bool:
            return self._sender is not None and self._sender.is_cancelled()

    class InferenceResponse:
        def __init__(self, output_tensors: list[Tensor] | None = None, error: object = None) -> None:
            self._outputs, self._error = output_tensors or [], error

        def output_tensors(self) -> list[Tensor]:
            return self._outputs

        def has_error(self) -> bool:
            return self._error is not None

        def error(self) -> object:
            return self._error

    class TritonError:
        UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED, ALREADY_EXISTS, CANCELLED = (
            range(8)
        )

        def __init__(self, message: str, code: int = 1) -> None:
            self._message, self._code = message, code

        def message(self) -> str:
            return self._message

        def code(self) -> int:
            return self._code

    def by_name(tensors: list[Tensor], name: str) -> Tensor | None:
        return next((tensor for tensor in tensors if tensor.name() == name), None)

    module.Tensor = Tensor
    module.InferenceRequest = InferenceRequest
    module.InferenceResponse = InferenceResponse
    module.InferenceResponseSender = InferenceResponseSender
    module.TritonError = TritonError
    module.TritonModelException = TritonModelException
    module.TRITONSERVER_RESPONSE_COMPLETE_FINAL = RESPONSE_COMPLETE_FINAL
    module.get_input_tensor_by_name = lambda request, name: by_name(request.inputs(), name)
    module.get_output_tensor_by_name = lambda response, name: by_name(response.output_tensors(), name)
    module.using_decoupled_model_transaction_policy = lambda model_config: bool(
        model_config.get("model_transaction_policy", {}).get("decoupled", False)
    )
    return module


PB_UTILS = _python_backend_utils()


# A decoupled model's version: one request's tensors, a cancellation check and a callback told of
# every response as the model sends it in; the responses out, in order.
StreamRunner = Callable[
    [Tensors, Callable[[], bool], Callable[[StreamedResponse], None]], Iterator[StreamedResponse]
]


@dataclass
class LoadedModel:
    config: mc.ModelConfig
    model_dir: Path
    # version → callable running one request's tensors to its output tensors.
    versions: dict[int, Callable[[Tensors], Tensors]]
    labels: dict[str, list[str]] = field(default_factory=dict)
    # version → the stream of a decoupled model (which then has no entry in `versions` to call).
    streams: dict[int, StreamRunner] = field(default_factory=dict)

    @property
    def decoupled(self) -> bool:
        return self.config.model_transaction_policy.decoupled


def _check_batch_dims(
    config: mc.ModelConfig, tensor: mc.ModelInput | mc.ModelOutput, graph_rank: int
) -> None:
    expected_rank = len(tensor.dims) + (1 if config.max_batch_size > 0 else 0)
    if graph_rank != expected_rank:
        raise ModelError(
            f"{config.name}: {tensor.name!r} has rank {graph_rank} in the model but config dims "
            f"{list(tensor.dims)} with max_batch_size {config.max_batch_size} imply rank {expected_rank}"
        )


def _onnx_runner(config: mc.ModelConfig, model_file: Path) -> Callable[[Tensors], Tensors]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    graph_tensors = {tensor.name: tensor for tensor in [*session.get_inputs(), *session.get_outputs()]}
    for tensor in [*config.input, *config.output]:
        if tensor.name not in graph_tensors:
            raise ModelError(f"{config.name}: {tensor.name!r} is not a tensor of {model_file.name}")
        _check_batch_dims(config, tensor, len(graph_tensors[tensor.name].shape))
    if {tensor.name for tensor in session.get_inputs()} != {tensor.name for tensor in config.input}:
        raise ModelError(f"{config.name}: config inputs differ from the model's")
    output_names = [tensor.name for tensor in config.output]
    return lambda inputs: dict(zip(output_names, session.run(output_names, inputs), strict=True))


def _python_model(config: mc.ModelConfig, model_dir: Path, version: int) -> object:
    sys.modules["triton_python_backend_utils"] = PB_UTILS
    source = model_dir / str(version) / "model.py"
    spec = importlib.util.spec_from_file_location(f"triton_stub_{config.name}_{version}", source)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    model = module.TritonPythonModel()
    try:
        model.initialize(
            {
                "model_config": json_format.MessageToJson(config, preserving_proto_field_name=True),
                "model_repository": str(model_dir),
                "model_version": str(version),
                "model_name": config.name,
                "model_instance_kind": "CPU",
                "model_instance_device_id": "0",
            }
        )
    except PB_UTILS.TritonModelException as error:
        raise ModelError(f"{config.name}: initialize failed: {error}") from error
    return model


def _decoupled_python_runner(model: object) -> StreamRunner:
    """Run `execute` on its own thread, as Triton's stub process does, and yield what it sends until
    the final flag; `execute` must return None."""

    def stream(
        inputs: Tensors, is_cancelled: Callable[[], bool], observe: Callable[[StreamedResponse], None]
    ) -> Iterator[StreamedResponse]:
        responses: queue.Queue[StreamedResponse] = queue.Queue()

        def deliver(response: StreamedResponse) -> None:
            observe(response)
            responses.put(response)

        sender = PB_UTILS.InferenceResponseSender(deliver, is_cancelled)
        request = PB_UTILS.InferenceRequest(
            [PB_UTILS.Tensor(name, array) for name, array in inputs.items()], sender
        )

        def execute() -> None:
            try:
                returned = model.execute([request])  # type: ignore[attr-defined]
                if returned is not None:
                    deliver(StreamedResponse(None, "a decoupled model's execute must return None", True))
            except Exception as error:  # the model's failure is the request's error, as in Triton
                deliver(StreamedResponse(None, f"execute raised {error!r}", True))

        threading.Thread(target=execute, daemon=True).start()
        while True:
            try:
                response = responses.get(timeout=DECOUPLED_RESPONSE_TIMEOUT_S)
            except queue.Empty:
                yield StreamedResponse(None, "the model sent no final response in time", True)
                return
            yield response
            if response.final:
                return

    return stream


def _python_runner(model: object) -> Callable[[Tensors], Tensors]:
    def run(inputs: Tensors) -> Tensors:
        request = PB_UTILS.InferenceRequest([PB_UTILS.Tensor(name, array) for name, array in inputs.items()])
        (response,) = model.execute([request])  # type: ignore[attr-defined]
        if response.has_error():
            raise ModelError(response.error().message())
        return {tensor.name(): tensor.as_numpy() for tensor in response.output_tensors()}

    return run


class TritonStub(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, repo_root: Path) -> None:
        self.repo_root = repo_root
        self.models: dict[str, LoadedModel] = {}
        # ("load" | "unload", model name) in the order the calls arrived.
        self.control_calls: list[tuple[str, str]] = []
        # Answer this many of the next inference calls UNAVAILABLE, as Triton does while restarting.
        self.unavailable_calls = 0
        # (model, responses sent, error of the last response or None) for every streamed request.
        self.completed_streams: list[tuple[str, int, str | None]] = []
        self._lock = threading.Lock()

    # -- repository ---------------------------------------------------------------------------
    def load(self, name: str, override: mc.ModelConfig | None = None) -> None:
        model_dir = self.repo_root / name
        config_path = model_dir / "config.pbtxt"
        if override is None:
            if not config_path.is_file():
                raise ModelError(f"{name}: no config.pbtxt in the repository")
            config = text_format.Parse(config_path.read_text(), mc.ModelConfig())
        else:
            config = override
        if config.name != name:
            raise ModelError(f"{name}: config name {config.name!r} differs from the directory")
        available = sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())
        policy = config.version_policy.WhichOneof("policy_choice")
        if policy == "specific":
            chosen = list(config.version_policy.specific.versions)
        elif policy == "all":
            chosen = available
        else:
            count = config.version_policy.latest.num_versions or 1
            chosen = available[-count:]
        if not chosen or any(version not in available for version in chosen):
            raise ModelError(f"{name}: versions {chosen} not all in the repository ({available})")
        for tensor in [*config.input, *config.output]:
            if tensor.data_type not in TRITON_DATATYPES:
                raise ModelError(f"{name}: unsupported data type for {tensor.name!r}")
        labels = {}
        for output in config.output:
            if output.label_filename:
                labels_path = model_dir / output.label_filename
                if not labels_path.is_file():
                    raise ModelError(f"{name}: labels file {output.label_filename!r} is missing")
                labels[output.name] = labels_path.read_text().splitlines()
        kind = config.platform or config.backend
        if kind == "ensemble":
            self._check_ensemble(config)
        if config.model_transaction_policy.decoupled and kind != "python":
            raise ModelError(f"{name}: only Python-backend models can be decoupled in the stub")
        loaded = LoadedModel(config=config, model_dir=model_dir, versions={}, labels=labels)
        for version in chosen:
            if config.model_transaction_policy.decoupled:
                self._check_model_file(config, model_dir, version, kind)
                loaded.streams[version] = _decoupled_python_runner(_python_model(config, model_dir, version))
            else:
                loaded.versions[version] = self._runner(config, model_dir, version, kind)
        self.models[name] = loaded

    def _check_model_file(self, config: mc.ModelConfig, model_dir: Path, version: int, kind: str) -> Path:
        if kind not in DEFAULT_FILENAMES:
            raise ModelError(f"{config.name}: platform/backend {kind!r} cannot run in the stub")
        model_file = model_dir / str(version) / (config.default_model_filename or DEFAULT_FILENAMES[kind])
        if not model_file.is_file():
            raise ModelError(f"{config.name}: version {version} lacks {model_file.name}")
        return model_file

    def _runner(
        self, config: mc.ModelConfig, model_dir: Path, version: int, kind: str
    ) -> Callable[[Tensors], Tensors]:
        if kind == "ensemble":
            return lambda inputs: self._run_ensemble(config, inputs)
        model_file = self._check_model_file(config, model_dir, version, kind)
        if kind == "python":
            return _python_runner(_python_model(config, model_dir, version))
        return _onnx_runner(config, model_file)

    def _check_ensemble(self, config: mc.ModelConfig) -> None:
        """Load the composing models as Triton does, and check that every mapped tensor exists."""
        available = {tensor.name for tensor in config.input}
        for step in config.ensemble_scheduling.step:
            if step.model_name not in self.models:
                self.load(step.model_name)
            step_config = self.models[step.model_name].config
            step_inputs = {tensor.name for tensor in step_config.input}
            if set(step.input_map) != step_inputs:
                raise ModelError(
                    f"{config.name}: step {step.model_name} maps {set(step.input_map)}, needs {step_inputs}"
                )
            if not set(step.input_map.values()) <= available:
                raise ModelError(f"{config.name}: step {step.model_name} reads tensors no earlier step makes")
            if not set(step.output_map) <= {tensor.name for tensor in step_config.output}:
                raise ModelError(f"{config.name}: step {step.model_name} maps outputs it does not have")
            available |= set(step.output_map.values())
        if not {tensor.name for tensor in config.output} <= available:
            raise ModelError(f"{config.name}: an ensemble output is produced by no step")

    def _run_ensemble(self, config: mc.ModelConfig, inputs: Tensors) -> Tensors:
        tensors = dict(inputs)
        for step in config.ensemble_scheduling.step:
            step_inputs = {model_input: tensors[source] for model_input, source in step.input_map.items()}
            version = "" if step.model_version < 0 else str(step.model_version)
            outputs = self._infer(step.model_name, version, step_inputs)
            tensors.update(
                {target: outputs[model_output] for model_output, target in step.output_map.items()}
            )
        return {tensor.name: tensors[tensor.name] for tensor in config.output}

    def _infer(self, name: str, version: str, inputs: Tensors) -> Tensors:
        loaded = self.models.get(name)
        if loaded is None:
            raise ModelError(f"model {name!r} is not loaded")
        if loaded.decoupled:
            raise ModelError(
                f"ModelInfer RPC doesn't support models with decoupled transaction policy ({name}): "
                "use ModelStreamInfer"
            )
        number = self._check_request(loaded, version, inputs)
        return loaded.versions[number](inputs)

    def _check_request(self, loaded: LoadedModel, version: str, inputs: Tensors) -> int:
        """The version that serves the request; the inputs checked against the config as Triton does."""
        name = loaded.config.name
        served = loaded.streams if loaded.decoupled else loaded.versions
        number = int(version) if version else max(served)
        if number not in served:
            raise ModelError(f"{name} version {number} is not loaded")
        config = loaded.config
        for tensor in config.input:
            if tensor.name not in inputs:
                raise ModelError(f"{name}: input {tensor.name!r} missing")
            array = inputs[tensor.name]
            if array.dtype != TRITON_DATATYPES[tensor.data_type][1]:
                raise ModelError(f"{name}: {tensor.name!r} must be {TRITON_DATATYPES[tensor.data_type][0]}")
            batch_dims = 1 if config.max_batch_size > 0 else 0
            if array.ndim != len(tensor.dims) + batch_dims:
                raise ModelError(f"{name}: {tensor.name!r} has shape {array.shape}, dims {list(tensor.dims)}")
            if batch_dims and array.shape[0] > config.max_batch_size:
                raise ModelError(
                    f"{name}: batch {array.shape[0]} exceeds max_batch_size {config.max_batch_size}"
                )
        return number

    # -- gRPC service ---------------------------------------------------------------------------
    def ServerLive(self, request, context):  # type: ignore[no-untyped-def]
        return service_pb2.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):  # type: ignore[no-untyped-def]
        return service_pb2.ServerReadyResponse(ready=True)

    def ModelReady(self, request, context):  # type: ignore[no-untyped-def]
        loaded = self.models.get(request.name)
        ready = loaded is not None and (
            not request.version or int(request.version) in {*loaded.versions, *loaded.streams}
        )
        return service_pb2.ModelReadyResponse(ready=ready)

    def ModelMetadata(self, request, context):  # type: ignore[no-untyped-def]
        loaded = self._loaded_or_abort(request.name, context)
        config = loaded.config
        batch = [-1] if config.max_batch_size > 0 else []

        def describe(
            tensor: mc.ModelInput | mc.ModelOutput,
        ) -> service_pb2.ModelMetadataResponse.TensorMetadata:
            return service_pb2.ModelMetadataResponse.TensorMetadata(
                name=tensor.name, datatype=TRITON_DATATYPES[tensor.data_type][0], shape=[*batch, *tensor.dims]
            )

        return service_pb2.ModelMetadataResponse(
            name=config.name,
            versions=[str(version) for version in sorted({*loaded.versions, *loaded.streams})],
            platform=config.platform or config.backend,
            inputs=[describe(tensor) for tensor in config.input],
            outputs=[describe(tensor) for tensor in config.output],
        )

    def ModelConfig(self, request, context):  # type: ignore[no-untyped-def]
        return service_pb2.ModelConfigResponse(config=self._loaded_or_abort(request.name, context).config)

    def RepositoryIndex(self, request, context):  # type: ignore[no-untyped-def]
        entries = []
        for model_dir in sorted(p for p in self.repo_root.iterdir() if p.is_dir()):
            loaded = self.models.get(model_dir.name)
            for version in sorted({*loaded.versions, *loaded.streams}) if loaded else [None]:
                entries.append(
                    service_pb2.RepositoryIndexResponse.ModelIndex(
                        name=model_dir.name,
                        version="" if version is None else str(version),
                        state="READY" if loaded else "UNAVAILABLE",
                    )
                )
        return service_pb2.RepositoryIndexResponse(models=entries)

    def RepositoryModelLoad(self, request, context):  # type: ignore[no-untyped-def]
        with self._lock:
            self.control_calls.append(("load", request.model_name))
            override = None
            if "config" in request.parameters:
                override = json_format.Parse(request.parameters["config"].string_param, mc.ModelConfig())
            try:
                self.load(request.model_name, override)
            except ModelError as error:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"load failed: {error}")
        return service_pb2.RepositoryModelLoadResponse()

    def RepositoryModelUnload(self, request, context):  # type: ignore[no-untyped-def]
        with self._lock:
            self.control_calls.append(("unload", request.model_name))
            self.models.pop(request.model_name, None)
        return service_pb2.RepositoryModelUnloadResponse()

    def ModelInfer(self, request, context):  # type: ignore[no-untyped-def]
        with self._lock:
            if self.unavailable_calls > 0:
                self.unavailable_calls -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "server is restarting")
        loaded = self._loaded_or_abort(request.model_name, context)
        try:
            inputs = _decode_inputs(request)
            outputs = self._infer(request.model_name, request.model_version, inputs)
            return _infer_response(request, loaded, outputs)
        except ModelError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))

    def ModelStreamInfer(self, request_iterator, context):  # type: ignore[no-untyped-def]
        """Triton's bidirectional streaming RPC: every request's responses, in order, on one stream."""
        with self._lock:
            if self.unavailable_calls > 0:
                self.unavailable_calls -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "server is restarting")
        for request in request_iterator:
            yield from self._stream_request(request, context)

    def _stream_request(self, request, context) -> Iterator[service_pb2.ModelStreamInferResponse]:  # type: ignore[no-untyped-def]
        loaded = self.models.get(request.model_name)
        if loaded is None:
            yield service_pb2.ModelStreamInferResponse(
                error_message=f"Request for unknown model: '{request.model_name}' is not found"
            )
            return
        try:
            inputs = _decode_inputs(request)
            if not loaded.decoupled:
                outputs = self._infer(request.model_name, request.model_version, inputs)
                response = _infer_response(request, loaded, outputs)
                response.parameters["triton_final_response"].bool_param = True
                yield service_pb2.ModelStreamInferResponse(infer_response=response)
                return
            number = self._check_request(loaded, request.model_version, inputs)
        except ModelError as error:
            yield service_pb2.ModelStreamInferResponse(error_message=str(error))
            return
        sent = 0

        def observe(streamed: StreamedResponse) -> None:
            # Counted as the model sends, so a stream the client cancelled is recorded too.
            nonlocal sent
            sent += 1
            if streamed.final:
                with self._lock:
                    self.completed_streams.append((request.model_name, sent, streamed.error))

        empty_final = request.parameters["triton_enable_empty_final_response"].bool_param
        for streamed in loaded.streams[number](inputs, lambda: not context.is_active(), observe):
            if streamed.error is not None:
                yield service_pb2.ModelStreamInferResponse(error_message=streamed.error)
            elif streamed.tensors is not None or empty_final:
                response = _infer_response(request, loaded, streamed.tensors or {}, all_outputs=False)
                response.parameters["triton_final_response"].bool_param = streamed.final
                yield service_pb2.ModelStreamInferResponse(infer_response=response)

    def _loaded_or_abort(self, name: str, context: grpc.ServicerContext) -> LoadedModel:
        loaded = self.models.get(name)
        if loaded is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"Request for unknown model: '{name}' is not found")
        return loaded


def _decode_inputs(request: service_pb2.ModelInferRequest) -> Tensors:
    inputs = {}
    for index, tensor in enumerate(request.inputs):
        raw = request.raw_input_contents[index]
        if tensor.datatype == "BYTES":
            array = deserialize_bytes_tensor(raw)
        else:
            dtype = next(
                (np_type for name, np_type in TRITON_DATATYPES.values() if name == tensor.datatype), None
            )
            if dtype is None:
                raise ModelError(f"unknown datatype {tensor.datatype}")
            array = np.frombuffer(raw, dtype=dtype)
        inputs[tensor.name] = array.reshape(tuple(tensor.shape))
    return inputs


def _infer_response(
    request: service_pb2.ModelInferRequest, loaded: LoadedModel, outputs: Tensors, all_outputs: bool = True
) -> service_pb2.ModelInferResponse:
    """The response with the requested outputs (all of the config's when none were requested).

    A decoupled model's empty final response carries no outputs (`all_outputs=False` and none given).
    """
    requested = request.outputs or [
        service_pb2.ModelInferRequest.InferRequestedOutputTensor(name=tensor.name)
        for tensor in loaded.config.output
        if all_outputs or tensor.name in outputs
    ]
    response = service_pb2.ModelInferResponse(
        model_name=request.model_name, model_version=request.model_version, id=request.id
    )
    for output in requested:
        if output.name not in outputs:
            raise ModelError(f"{loaded.config.name}: the model did not produce {output.name!r}")
        array = outputs[output.name]
        datatype = {np.dtype(np_type): name for name, np_type in TRITON_DATATYPES.values()}.get(
            array.dtype, "BYTES"
        )
        if "classification" in output.parameters:
            labels = loaded.labels.get(output.name)
            if labels is None:
                raise ModelError(f"{output.name!r} has no labels file")
            array = _classify(array, output.parameters["classification"].int64_param, labels)
            datatype = "BYTES"
        raw = serialize_byte_tensor(array).item() if datatype == "BYTES" else array.tobytes()
        response.outputs.append(
            service_pb2.ModelInferResponse.InferOutputTensor(
                name=output.name, datatype=datatype, shape=array.shape
            )
        )
        response.raw_output_contents.append(raw)
    return response


def _classify(scores: np.ndarray, class_count: int, labels: list[str]) -> np.ndarray:
    """Triton's classification extension: the top `class_count` of each row as "value:index:label"."""
    rows = []
    for row in scores.reshape(scores.shape[0], -1):
        best = np.argsort(-row, kind="stable")[:class_count]
        rows.append([f"{row[index]}:{index}:{labels[index]}".encode() for index in best])
    return np.array(rows, dtype=np.object_)


@dataclass
class RunningStub:
    url: str
    servicer: TritonStub
    server: grpc.Server


def start_triton_stub(repo_root: Path, port: int = 0) -> RunningStub:
    """Serve `repo_root` on 127.0.0.1; port 0 lets gRPC pick a free port for this server alone."""
    servicer = TritonStub(repo_root)
    # SO_REUSEPORT off: otherwise two test servers could bind one port and answer each other's calls.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return RunningStub(url=f"127.0.0.1:{bound}", servicer=servicer, server=server)


@pytest.fixture
def triton_server() -> Iterator[Callable[..., RunningStub]]:
    """A factory: `triton_server(repo_root)` starts a stub on its own free port; all stop after the test."""
    started: list[RunningStub] = []

    def start(repo_root: Path, port: int = 0) -> RunningStub:
        stub = start_triton_stub(repo_root, port)
        started.append(stub)
        return stub

    yield start
    for stub in started:
        stub.server.stop(grace=None)
