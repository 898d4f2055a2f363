"""Check a published classifier's Triton repository the way Triton would read it, before loading it.

Each config.pbtxt is parsed with Triton's protobuf, and its names, data types and dims are compared
with the ONNX graph they describe, the labels file and the ensemble's step mapping. The result is a
list of problems in words; an empty list means Triton should load the model.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf.text_format import ParseError
from tritonclient.grpc import model_config_pb2 as mc

from shared.serving.triton_config import (
    DEFAULT_MODEL_FILENAMES,
    ENSEMBLE_PLATFORM,
    ONNX_PLATFORM,
    PYTHON_BACKEND,
    TRT_PLATFORM,
    onnx_model_name,
    tokenizer_model_name,
    trt_model_name,
)
from shared.serving.triton_repository import CONFIG_FILENAME, model_versions, read_model_config

# ONNX TensorProto element types and the Triton data type each maps to.
ONNX_TO_TRITON = {
    1: mc.TYPE_FP32,
    6: mc.TYPE_INT32,
    7: mc.TYPE_INT64,
    9: mc.TYPE_BOOL,
    10: mc.TYPE_FP16,
    11: mc.TYPE_FP64,
    16: mc.TYPE_BF16,
}


def _type_name(data_type: int) -> str:
    return mc.DataType.Name(data_type)


def _graph_tensors(
    onnx_path: Path,
) -> tuple[dict[str, tuple[int, list[int]]], dict[str, tuple[int, list[int]]]]:
    """Inputs and outputs of the graph: name → (ONNX element type, dims with -1 for symbolic)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {initializer.name for initializer in graph.initializer}

    def describe(values: list) -> dict[str, tuple[int, list[int]]]:
        return {
            value.name: (
                value.type.tensor_type.elem_type,
                [
                    dim.dim_value if dim.HasField("dim_value") else -1
                    for dim in value.type.tensor_type.shape.dim
                ],
            )
            for value in values
            if value.name not in initializers
        }

    return describe(list(graph.input)), describe(list(graph.output))


def _compare_tensors(
    model: str,
    kind: str,
    declared: list[mc.ModelInput] | list[mc.ModelOutput],
    graph: dict[str, tuple[int, list[int]]],
    max_batch_size: int,
) -> list[str]:
    problems = []
    declared_names = {tensor.name for tensor in declared}
    for missing in sorted(set(graph) - declared_names):
        problems.append(f"{model}: graph {kind} {missing!r} is not in config.pbtxt")
    for tensor in declared:
        if tensor.name not in graph:
            problems.append(f"{model}: config {kind} {tensor.name!r} is not a graph {kind}")
            continue
        element_type, graph_dims = graph[tensor.name]
        expected_type = ONNX_TO_TRITON.get(element_type)
        if expected_type != tensor.data_type:
            problems.append(
                f"{model}: {kind} {tensor.name!r} is {_type_name(tensor.data_type)} in config.pbtxt "
                f"but ONNX element type {element_type} in the graph"
            )
        # With max_batch_size > 0 Triton prepends the batch dimension to the config's dims.
        expected_dims = graph_dims[1:] if max_batch_size > 0 else graph_dims
        if len(tensor.dims) != len(expected_dims) or any(
            config_dim != graph_dim and graph_dim != -1
            for config_dim, graph_dim in zip(tensor.dims, expected_dims, strict=False)
        ):
            problems.append(
                f"{model}: {kind} {tensor.name!r} dims {list(tensor.dims)} do not match the graph's "
                f"{expected_dims} (batch dimension excluded: {max_batch_size > 0})"
            )
    return problems


def _check_labels(model_dir: Path, config: mc.ModelConfig) -> list[str]:
    problems = []
    for output in config.output:
        if not output.label_filename:
            continue
        labels_path = model_dir / output.label_filename
        if not labels_path.is_file():
            problems.append(f"{config.name}: labels file {output.label_filename!r} is missing")
            continue
        labels = labels_path.read_text().splitlines()
        if list(output.dims) != [len(labels)]:
            problems.append(
                f"{config.name}: {output.name!r} has dims {list(output.dims)} but "
                f"{output.label_filename} holds {len(labels)} labels"
            )
    return problems


def _check_model(root: Path, model_name: str, configs: dict[str, mc.ModelConfig]) -> list[str]:
    """Parse one model's config, check its name and version folders; remember it for the ensemble."""
    model_dir = root / model_name
    if not (model_dir / CONFIG_FILENAME).is_file():
        return [f"{model_name}: {CONFIG_FILENAME} is missing"]
    try:
        config = read_model_config(model_dir)
    except ParseError as error:
        return [f"{model_name}: {CONFIG_FILENAME} does not parse as a ModelConfig: {error}"]
    configs[model_name] = config
    problems = []
    if config.name != model_name:
        problems.append(f"{model_name}: config name {config.name!r} differs from its directory")
    versions = model_versions(root, model_name)
    if not versions:
        problems.append(f"{model_name}: no numeric version folder")
    problems += _check_labels(model_dir, config)

    kind = config.platform or config.backend
    for version in versions:
        version_dir = model_dir / str(version)
        if kind == TRT_PLATFORM:
            filenames = list(config.cc_model_filenames.values()) or [
                config.default_model_filename or DEFAULT_MODEL_FILENAMES[TRT_PLATFORM]
            ]
        elif kind in DEFAULT_MODEL_FILENAMES:
            filenames = [config.default_model_filename or DEFAULT_MODEL_FILENAMES[kind]]
        else:
            filenames = []
        problems += [
            f"{model_name}: version {version} lacks {filename}"
            for filename in filenames
            if not (version_dir / filename).is_file()
        ]
        if kind == ONNX_PLATFORM and (version_dir / filenames[0]).is_file():
            inputs, outputs = _graph_tensors(version_dir / filenames[0])
            problems += _compare_tensors(
                f"{model_name}/{version}", "input", list(config.input), inputs, config.max_batch_size
            )
            problems += _compare_tensors(
                f"{model_name}/{version}", "output", list(config.output), outputs, config.max_batch_size
            )
    return problems


def _check_ensemble(config: mc.ModelConfig, configs: dict[str, mc.ModelConfig]) -> list[str]:
    """Every step names a known model, maps only its real tensors, with matching data types."""
    problems = []
    # Tensors available so far: the ensemble's own inputs, then each step's mapped outputs.
    available = {tensor.name: tensor.data_type for tensor in config.input}
    for index, step in enumerate(config.ensemble_scheduling.step):
        where = f"{config.name} step {index} ({step.model_name})"
        step_config = configs.get(step.model_name)
        if step_config is None:
            problems.append(f"{where}: no such model in the repository")
            continue
        if step_config.max_batch_size < config.max_batch_size:
            problems.append(
                f"{where}: max_batch_size {step_config.max_batch_size} is below the ensemble's "
                f"{config.max_batch_size}"
            )
        step_inputs = {tensor.name: tensor.data_type for tensor in step_config.input}
        step_outputs = {tensor.name: tensor.data_type for tensor in step_config.output}
        for missing in sorted(set(step_inputs) - set(step.input_map)):
            problems.append(f"{where}: input {missing!r} is not fed")
        for model_input, ensemble_tensor in step.input_map.items():
            if model_input not in step_inputs:
                problems.append(f"{where}: maps unknown input {model_input!r}")
            elif ensemble_tensor not in available:
                problems.append(f"{where}: {ensemble_tensor!r} is not produced before this step")
            elif available[ensemble_tensor] != step_inputs[model_input]:
                problems.append(
                    f"{where}: {ensemble_tensor!r} is {_type_name(available[ensemble_tensor])} but "
                    f"{model_input!r} takes {_type_name(step_inputs[model_input])}"
                )
        for model_output, ensemble_tensor in step.output_map.items():
            if model_output not in step_outputs:
                problems.append(f"{where}: maps unknown output {model_output!r}")
            else:
                available[ensemble_tensor] = step_outputs[model_output]
    for output in config.output:
        if output.name not in available:
            problems.append(f"{config.name}: output {output.name!r} is produced by no step")
        elif available[output.name] != output.data_type:
            problems.append(f"{config.name}: output {output.name!r} data type differs from its step's")
    return problems


def check_repository(root: Path, name: str) -> list[str]:
    """Problems with the published classifier `name` under `root`; empty when it is consistent."""
    configs: dict[str, mc.ModelConfig] = {}
    problems = []
    component_names = [tokenizer_model_name(name), onnx_model_name(name)]
    if (root / trt_model_name(name)).is_dir():
        component_names.append(trt_model_name(name))
    for model_name in [*component_names, name]:
        problems += _check_model(root, model_name, configs)

    tokenizer = configs.get(tokenizer_model_name(name))
    if tokenizer is not None and tokenizer.backend != PYTHON_BACKEND:
        problems.append(f"{tokenizer.name}: backend is {tokenizer.backend!r}, not {PYTHON_BACKEND!r}")
    ensemble = configs.get(name)
    if ensemble is not None:
        if ensemble.platform != ENSEMBLE_PLATFORM:
            problems.append(f"{name}: platform is {ensemble.platform!r}, not {ENSEMBLE_PLATFORM!r}")
        else:
            problems += _check_ensemble(ensemble, configs)
    return problems
