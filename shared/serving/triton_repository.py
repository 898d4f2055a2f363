"""Write a published model into a Triton model repository on local disk.

Layout of classifier `<name>`, version `<n>` (the caller uploads the directory to the bucket Triton
reads in production; the embedded default serves it from disk):

    <name>_tokenizer/config.pbtxt      <n>/model.py, <n>/tokenizer/...
    <name>_onnx/config.pbtxt           labels.txt, <n>/model.onnx
    <name>_trt/config.pbtxt            labels.txt, <n>/<engine key>.plan   (only with engines)
    <name>/config.pbtxt                labels.txt, <n>/                    (the ensemble apps call)

Layout of causal LM `<name>`, version `<n>`:

    <name>/config.pbtxt                <n>/model.py, <n>/genai_stream.py, <n>/genai/...  (CPU, streams)
    <name>_vllm/config.pbtxt           <n>/model.json                      (GPU, only when asked for)

Every version folder is written completely in a staging folder beside it and then renamed into
place, so Triton (or a copy to the object store) never sees half a version. A version, once
written, never changes: publishing it again with the same files is a no-op, with others a Conflict.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from shared.errors import Conflict, InvalidInput
from shared.serving import python_backend
from shared.serving.triton_config import (
    DEFAULT_MODEL_FILENAMES,
    LABELS_FILENAME,
    ONNX_PLATFORM,
    PYTHON_BACKEND,
    GenerationServingOptions,
    ServingOptions,
    config_from_text,
    config_to_text,
    ensemble_model_config,
    generation_model_config,
    onnx_model_config,
    onnx_model_name,
    tokenizer_model_config,
    tokenizer_model_name,
    trt_model_config,
    trt_model_name,
    vllm_model_config,
    vllm_model_name,
)

CONFIG_FILENAME = "config.pbtxt"
TOKENIZER_SUBDIR = "tokenizer"
STAGING_PREFIX = ".staging-"
TOKENIZER_MODEL_SOURCE = Path(python_backend.__file__).parent / "tokenizer_model.py"
GENERATION_MODEL_SOURCE = Path(python_backend.__file__).parent / "generation_model.py"
GENERATION_CORE_SOURCE = Path(python_backend.__file__).parent / "genai_stream.py"
GENERATION_CORE_FILENAME = "genai_stream.py"
GENAI_SUBDIR = "genai"
VLLM_ENGINE_ARGS_FILENAME = "model.json"
# Files an ONNX Runtime GenAI model directory must hold to be served.
GENAI_REQUIRED_FILES = ("genai_config.json", "tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class EngineArtifact:
    """A TensorRT engine and the GPU it was built for (compute capability "9.0", key "sm90-trt10.13")."""

    path: Path
    key: str
    compute_capability: str

    @property
    def filename(self) -> str:
        return f"{self.key}.plan"


@dataclass(frozen=True)
class PublishedModel:
    name: str
    version: int
    root: Path
    # Model directories written, in the order they must be loaded (the ensemble last).
    models: list[str]


def read_model_config(path: Path) -> mc.ModelConfig:
    """Parse a config.pbtxt (or the model directory holding one) with Triton's protobuf."""
    config_path = path / CONFIG_FILENAME if path.is_dir() else path
    return config_from_text(config_path.read_text())


def model_versions(root: Path, model_name: str) -> list[int]:
    """The complete version folders of a model, oldest first (staging folders are not versions)."""
    model_dir = root / model_name
    if not model_dir.is_dir():
        return []
    return sorted(int(entry.name) for entry in model_dir.iterdir() if entry.is_dir() and entry.name.isdigit())


def onnx_input_names(onnx_path: Path) -> list[str]:
    """The graph inputs a caller feeds (initializers listed as inputs by old exporters excluded)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {initializer.name for initializer in graph.initializer}
    return [tensor.name for tensor in graph.input if tensor.name not in initializers]


def _write_text_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=STAGING_PREFIX, delete=False) as handle:
        handle.write(text)
    os.replace(handle.name, path)


def _same_tree(left: Path, right: Path) -> bool:
    comparison = filecmp.dircmp(left, right)
    if comparison.left_only or comparison.right_only or comparison.funny_files:
        return False
    _, mismatched, errors = filecmp.cmpfiles(left, right, comparison.common_files, shallow=False)
    if mismatched or errors:
        return False
    return all(_same_tree(left / sub, right / sub) for sub in comparison.common_dirs)


def _write_version(model_dir: Path, version: int, fill: Callable[[Path], None]) -> None:
    """Fill a staging folder, then rename it to `<model_dir>/<version>` in one step."""
    model_dir.mkdir(parents=True, exist_ok=True)
    final = model_dir / str(version)
    staging = Path(tempfile.mkdtemp(dir=model_dir, prefix=STAGING_PREFIX))
    try:
        fill(staging)
        if final.exists():
            if not _same_tree(staging, final):
                raise Conflict(
                    f"{model_dir.name} version {version} is already published with other files",
                    details={"model": model_dir.name, "version": version},
                )
            return
        os.rename(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _write_model_files(model_dir: Path, config: mc.ModelConfig, labels: Sequence[str] | None) -> None:
    if labels is not None:
        _write_text_atomically(model_dir / LABELS_FILENAME, "".join(f"{label}\n" for label in labels))
    _write_text_atomically(model_dir / CONFIG_FILENAME, config_to_text(config))


def publish_classifier(
    root: Path,
    name: str,
    version: int,
    onnx_path: Path,
    tokenizer_dir: Path,
    labels: Sequence[str],
    options: ServingOptions | None = None,
    engines: Sequence[EngineArtifact] = (),
) -> PublishedModel:
    """Write version `version` of classifier `name` (tokenizer, ONNX, TensorRT, ensemble) under `root`.

    `tokenizer_dir` is the fine-tuned model's directory (its tokenizer files are what ships);
    `labels` are the class names in logit order.
    """
    from transformers import AutoTokenizer

    options = options or ServingOptions()
    if version < 1:
        raise InvalidInput("Triton versions start at 1", details={"version": version})
    if options.ensemble_target == "trt" and not engines:
        raise InvalidInput("the ensemble cannot route to TensorRT without an engine")
    input_names = onnx_input_names(onnx_path)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    labels = list(labels)

    def fill_tokenizer(folder: Path) -> None:
        shutil.copyfile(TOKENIZER_MODEL_SOURCE, folder / DEFAULT_MODEL_FILENAMES[PYTHON_BACKEND])
        tokenizer.save_pretrained(folder / TOKENIZER_SUBDIR)

    def fill_onnx(folder: Path) -> None:
        shutil.copyfile(onnx_path, folder / DEFAULT_MODEL_FILENAMES[ONNX_PLATFORM])

    def fill_engines(folder: Path) -> None:
        for engine in engines:
            shutil.copyfile(engine.path, folder / engine.filename)

    models: list[tuple[str, mc.ModelConfig, Callable[[Path], None], Sequence[str] | None]] = [
        (
            tokenizer_model_name(name),
            tokenizer_model_config(name, input_names, options),
            fill_tokenizer,
            None,
        ),
        (
            onnx_model_name(name),
            onnx_model_config(name, input_names, len(labels), options),
            fill_onnx,
            labels,
        ),
    ]
    if engines:
        engine_files = {engine.compute_capability: engine.filename for engine in engines}
        models.append(
            (
                trt_model_name(name),
                trt_model_config(name, input_names, len(labels), options, engine_files),
                fill_engines,
                labels,
            )
        )
    # The ensemble's version folder is empty: Triton only needs it to exist.
    models.append(
        (name, ensemble_model_config(name, input_names, len(labels), options), lambda _: None, labels)
    )

    for model_name, config, fill, model_labels in models:
        model_dir = root / model_name
        _write_version(model_dir, version, fill)
        _write_model_files(model_dir, config, model_labels)
    return PublishedModel(name=name, version=version, root=root, models=[model for model, *_ in models])


@dataclass(frozen=True)
class VllmDeployment:
    """Where a GPU Triton's vLLM backend finds the merged model, and the engine arguments to use.

    vLLM reads `model` itself: a path as mounted in the Triton container, or an object-store URI
    with a load format that streams from it (for example "s3://models-merged/<job>" with
    `load_format="runai_streamer"`). Triton does not resolve it against the repository, so the
    caller names the location the merged safetensors were uploaded to.
    """

    model_location: str
    gpu_memory_utilization: float = 0.85
    max_model_len: int | None = None
    dtype: str = "auto"
    load_format: str | None = None

    def engine_args(self) -> dict[str, object]:
        args: dict[str, object] = {
            "model": self.model_location,
            "tokenizer": self.model_location,
            "dtype": self.dtype,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "disable_log_requests": True,
        }
        if self.max_model_len is not None:
            args["max_model_len"] = self.max_model_len
        if self.load_format is not None:
            args["load_format"] = self.load_format
        return args


def _check_genai_dir(genai_dir: Path) -> None:
    from transformers import AutoTokenizer

    missing = [name for name in GENAI_REQUIRED_FILES if not (genai_dir / name).is_file()]
    if missing:
        raise InvalidInput(
            f"{genai_dir} is not an ONNX Runtime GenAI model directory: it lacks {missing}",
            details={"genai_dir": str(genai_dir), "missing": missing},
        )
    decoder = json.loads((genai_dir / "genai_config.json").read_text())["model"]["decoder"]["filename"]
    if not (genai_dir / decoder).is_file():
        raise InvalidInput(f"{genai_dir} lacks its decoder {decoder}", details={"genai_dir": str(genai_dir)})
    if not AutoTokenizer.from_pretrained(genai_dir).chat_template:
        raise InvalidInput(
            f"{genai_dir} has no chat template: serving must render prompts as training did",
            details={"genai_dir": str(genai_dir)},
        )


def publish_causal_lm(
    root: Path,
    name: str,
    version: int,
    genai_dir: Path,
    precision: str,
    options: GenerationServingOptions | None = None,
    vllm: VllmDeployment | None = None,
) -> PublishedModel:
    """Write version `version` of causal LM `name` under `root`: the ONNX Runtime GenAI model (built
    for CPU at `precision`, from `export_causal_lm_genai`) behind a decoupled Python-backend model,
    and, with `vllm`, a vLLM-backend model for GPU deployments over the merged safetensors.

    Same discipline as `publish_classifier`: each version folder is staged and renamed into place,
    and a published version never changes (same files: no-op; other files: Conflict).
    """
    options = options or GenerationServingOptions()
    if version < 1:
        raise InvalidInput("Triton versions start at 1", details={"version": version})
    _check_genai_dir(genai_dir)

    def fill_generation(folder: Path) -> None:
        shutil.copyfile(GENERATION_MODEL_SOURCE, folder / DEFAULT_MODEL_FILENAMES[PYTHON_BACKEND])
        shutil.copyfile(GENERATION_CORE_SOURCE, folder / GENERATION_CORE_FILENAME)
        # The builder's own record (paths, timings) would make two publishes of one model differ.
        shutil.copytree(genai_dir, folder / GENAI_SUBDIR, ignore=shutil.ignore_patterns("temper-*.json"))

    models: list[tuple[str, mc.ModelConfig, Callable[[Path], None]]] = [
        (name, generation_model_config(name, precision, options), fill_generation)
    ]
    if vllm is not None:
        engine_args = json.dumps(vllm.engine_args(), indent=2, sort_keys=True) + "\n"
        models.append(
            (
                vllm_model_name(name),
                vllm_model_config(name),
                lambda folder: _write_text(folder / VLLM_ENGINE_ARGS_FILENAME, engine_args),
            )
        )
    for model_name, config, fill in models:
        model_dir = root / model_name
        _write_version(model_dir, version, fill)
        _write_model_files(model_dir, config, None)
    return PublishedModel(name=name, version=version, root=root, models=[model for model, *_ in models])


def _write_text(path: Path, text: str) -> None:
    path.write_text(text)
