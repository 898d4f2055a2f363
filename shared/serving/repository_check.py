"""Check a published model's Triton repository the way Triton would read it, before loading it.

Each config.pbtxt is parsed with Triton's protobuf, and its names, data types and dims are compared
with the ONNX graph they describe, the labels file and the ensemble's step mapping. A causal LM's
generation model is checked for its decoupled policy, its tensor contract and, in each version, the
files its model.py loads (the generation core, the GenAI config, decoder, tokenizer and chat
template); its vLLM model for the backend's tensors and a model.json naming the weights. The result
is a list of problems in words; an empty list means Triton should load the model.
"""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf.text_format import ParseError
from tritonclient.grpc import model_config_pb2 as mc

from shared.serving.triton_config import (
    DEFAULT_MODEL_FILENAMES,
    ENSEMBLE_PLATFORM,
    GENERATION_FINISH_REASON_OUTPUT,
    GENERATION_FINISHED_OUTPUT,
    GENERATION_REQUEST_INPUT,
    GENERATION_TEXT_OUTPUT,
    ONNX_PLATFORM,
    PYTHON_BACKEND,
    TRT_PLATFORM,
    VLLM_BACKEND,
    VLLM_TEXT_INPUT,
    VLLM_TEXT_OUTPUT,
    onnx_model_name,
    tokenizer_model_name,
    trt_model_name,
    vllm_model_name,
)
from shared.serving.triton_repository import (
    CONFIG_FILENAME,
    GENAI_REQUIRED_FILES,
    GENAI_SUBDIR,
    GENERATION_CORE_FILENAME,
    VLLM_ENGINE_ARGS_FILENAME,
    model_versions,
    read_model_config,
)

# The generation model's tensor contract: name → (data type, dims).
GENERATION_INPUTS = {GENERATION_REQUEST_INPUT: (mc.TYPE_STRING, [1])}
GENERATION_OUTPUTS = {
    GENERATION_TEXT_OUTPUT: (mc.TYPE_STRING, [1]),
    GENERATION_FINISHED_OUTPUT: (mc.TYPE_BOOL, [1]),
    GENERATION_FINISH_REASON_OUTPUT: (mc.TYPE_STRING, [1]),
}
VLLM_REQUIRED = {VLLM_TEXT_INPUT: (mc.TYPE_STRING, [1])}
VLLM_OUTPUTS = {VLLM_TEXT_OUTPUT: (mc.TYPE_STRING, [-1])}

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


def _check_contract(
    config: mc.ModelConfig,
    kind: str,
    declared: list[mc.ModelInput] | list[mc.ModelOutput],
    expected: dict[str, tuple[int, list[int]]],
) -> list[str]:
    """Each expected tensor is declared with its data type and dims (more optional ones may follow)."""
    problems = []
    tensors = {tensor.name: tensor for tensor in declared}
    for tensor_name, (data_type, dims) in expected.items():
        tensor = tensors.get(tensor_name)
        if tensor is None:
            problems.append(f"{config.name}: {kind} {tensor_name!r} is missing")
        elif tensor.data_type != data_type or list(tensor.dims) != dims:
            problems.append(
                f"{config.name}: {kind} {tensor_name!r} is {_type_name(tensor.data_type)} {list(tensor.dims)}, "
                f"expected {_type_name(data_type)} {dims}"
            )
    return problems


def _check_streaming(config: mc.ModelConfig, backend: str) -> list[str]:
    problems = []
    if config.backend != backend:
        problems.append(f"{config.name}: backend is {config.backend!r}, not {backend!r}")
    if not config.model_transaction_policy.decoupled:
        problems.append(f"{config.name}: streams its answers but model_transaction_policy is not decoupled")
    if config.max_batch_size != 0:
        problems.append(f"{config.name}: max_batch_size must be 0 (requests are not batched by Triton)")
    return problems


def _check_genai_version(model_name: str, version: int, version_dir: Path) -> list[str]:
    """The files the generation model.py loads, as its initialize would find them."""
    where = f"{model_name}/{version}"
    problems = [
        f"{where}: lacks {filename}"
        for filename in (DEFAULT_MODEL_FILENAMES[PYTHON_BACKEND], GENERATION_CORE_FILENAME)
        if not (version_dir / filename).is_file()
    ]
    genai_dir = version_dir / GENAI_SUBDIR
    missing = [filename for filename in GENAI_REQUIRED_FILES if not (genai_dir / filename).is_file()]
    if missing:
        return [*problems, f"{where}: {GENAI_SUBDIR}/ lacks {missing}"]
    try:
        genai_config = json.loads((genai_dir / "genai_config.json").read_text())
        decoder = genai_config["model"]["decoder"]["filename"]
        context_length = int(genai_config["model"]["context_length"])
    except (ValueError, KeyError, TypeError) as error:
        return [
            *problems,
            f"{where}: {GENAI_SUBDIR}/genai_config.json lacks the decoder or context: {error!r}",
        ]
    if not (genai_dir / decoder).is_file():
        problems.append(f"{where}: {GENAI_SUBDIR}/ lacks the decoder {decoder}")
    if context_length < 1:
        problems.append(f"{where}: context_length {context_length} leaves no room to generate")
    if "eos_token_id" not in genai_config["model"]:
        problems.append(f"{where}: genai_config.json names no eos_token_id: generation would not stop")
    template_file = genai_dir / "chat_template.jinja"
    tokenizer_config = json.loads((genai_dir / "tokenizer_config.json").read_text())
    if not template_file.is_file() and not tokenizer_config.get("chat_template"):
        problems.append(f"{where}: no chat template: prompts could not be rendered as in training")
    return problems


def check_generation_repository(root: Path, name: str) -> list[str]:
    """Problems with the published causal LM `name` (and `<name>_vllm` when there is one)."""
    configs: dict[str, mc.ModelConfig] = {}
    problems = _check_model(root, name, configs)
    config = configs.get(name)
    if config is not None:
        problems += _check_streaming(config, PYTHON_BACKEND)
        problems += _check_contract(config, "input", list(config.input), GENERATION_INPUTS)
        problems += _check_contract(config, "output", list(config.output), GENERATION_OUTPUTS)
        if len(config.input) != len(GENERATION_INPUTS):
            problems.append(f"{name}: takes only {list(GENERATION_INPUTS)}")
        for version in model_versions(root, name):
            problems += _check_genai_version(name, version, root / name / str(version))
    vllm_name = vllm_model_name(name)
    if (root / vllm_name).is_dir():
        problems += _check_model(root, vllm_name, configs)
        vllm_config = configs.get(vllm_name)
        if vllm_config is not None:
            problems += _check_streaming(vllm_config, VLLM_BACKEND)
            problems += _check_contract(vllm_config, "input", list(vllm_config.input), VLLM_REQUIRED)
            problems += _check_contract(vllm_config, "output", list(vllm_config.output), VLLM_OUTPUTS)
            for version in model_versions(root, vllm_name):
                problems += _check_vllm_version(vllm_name, version, root / vllm_name / str(version))
    return problems


def _check_vllm_version(model_name: str, version: int, version_dir: Path) -> list[str]:
    engine_args_path = version_dir / VLLM_ENGINE_ARGS_FILENAME
    where = f"{model_name}/{version}"
    if not engine_args_path.is_file():
        return [f"{where}: lacks {VLLM_ENGINE_ARGS_FILENAME} (the vLLM engine arguments)"]
    try:
        engine_args = json.loads(engine_args_path.read_text())
    except ValueError as error:
        return [f"{where}: {VLLM_ENGINE_ARGS_FILENAME} is not JSON: {error}"]
    if (
        not isinstance(engine_args, dict)
        or not isinstance(engine_args.get("model"), str)
        or not engine_args["model"]
    ):
        return [f"{where}: {VLLM_ENGINE_ARGS_FILENAME} must name the merged model's location in 'model'"]
    return []


def _is_generation_model(root: Path, name: str) -> bool:
    try:
        config = read_model_config(root / name)
    except (OSError, ParseError):
        return False
    return (
        config.backend == PYTHON_BACKEND
        and config.platform != ENSEMBLE_PLATFORM
        and not config.ensemble_scheduling.step
    )


def check_repository(root: Path, name: str) -> list[str]:
    """Problems with the published model `name` under `root`; empty when it is consistent.

    A causal LM (a Python-backend model under `name` itself) is checked as one; anything else as
    the classifier ensemble.
    """
    if _is_generation_model(root, name):
        return check_generation_repository(root, name)
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
