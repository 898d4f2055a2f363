"""What can be known of a base model without loading its weights: its tokenizer files, its config
and its parameter count (from the safetensors headers, a few kilobytes per file).

A dry run reads these in the API process. A `local:` or `package:` source is read where it lies; a
`store:` source has every file but the weights downloaded once to a cache folder, and its
safetensors headers read with the first bytes of each weights file.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from shared.base_models.service import local_model_dir
from shared.errors import InvalidInput
from shared.storage.base import ObjectStore
from shared.storage.errors import ObjectNotFound

# Weights files: never downloaded for a dry run.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".onnx", ".msgpack", ".h5", ".ckpt")
# A safetensors header is JSON of tensor names, dtypes and shapes; a larger one is not a header.
MAX_HEADER_BYTES = 100 * 1024 * 1024
# Tensors that hold learned numbers; integer buffers (BERT's position_ids) are not parameters.
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})
# Parameter names of the token (and position) embedding tables: looked up, not multiplied.
EMBEDDING_MARKERS = ("embed", "wte.", "wpe.", "shared.weight")
_COMPLETE = ".temper-complete"
# Decoder families whose MLP is gated (gate_proj, up_proj, down_proj).
GATED_MLP_MODEL_TYPES = frozenset(
    {
        "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2",
        "gemma3", "gemma3_text", "phi3", "olmo", "olmo2", "granite", "cohere", "cohere2", "deepseek_v3",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Architecture:
    """The shape numbers of a transformer that memory and compute estimates need, from config.json."""

    model_type: str | None
    hidden_size: int
    layers: int
    attention_heads: int
    intermediate_size: int
    vocab_size: int
    # A gated MLP (SwiGLU/GeGLU: gate, up and down projections, as in Llama, Mistral, Qwen, Gemma):
    # it keeps more activations per token than the GPT/BERT block the memory formula starts from.
    gated_mlp: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Architecture:
        def first(*names: str, default: int = 0) -> int:
            for name in names:
                value = config.get(name)
                if isinstance(value, int) and value > 0:
                    return value
            return default

        hidden = first("hidden_size", "n_embd", "d_model", "dim")
        return cls(
            model_type=config.get("model_type"),
            hidden_size=hidden,
            layers=first("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
            attention_heads=first("num_attention_heads", "n_head", "num_heads", "n_heads"),
            intermediate_size=first("intermediate_size", "n_inner", "ffn_dim", default=4 * hidden),
            vocab_size=first("vocab_size"),
            gated_mlp=config.get("model_type") in GATED_MLP_MODEL_TYPES,
        )


@dataclass(frozen=True)
class ParameterCount:
    total: int
    # Of `total`, the embedding tables (their cost per token is a lookup, not a matrix product).
    embedding: int
    # "safetensors" (counted from the headers) or "config" (12·L·h² + V·h, when there are none).
    counted_from: str


def count_parameters(headers: list[dict[str, Any]]) -> ParameterCount:
    total = embedding = 0
    for header in headers:
        for name, tensor in header.items():
            if name == "__metadata__" or tensor.get("dtype") not in FLOAT_DTYPES:
                continue
            size = math.prod(tensor.get("shape") or [1])
            total += size
            if any(marker in name for marker in EMBEDDING_MARKERS):
                embedding += size
    return ParameterCount(total=total, embedding=embedding, counted_from="safetensors")


def parameters_from_config(architecture: Architecture) -> ParameterCount:
    """The usual transformer count when no safetensors header can be read."""
    h, layers, vocab = architecture.hidden_size, architecture.layers, architecture.vocab_size
    per_layer = 4 * h * h + 2 * h * architecture.intermediate_size
    embedding = vocab * h
    return ParameterCount(total=layers * per_layer + embedding, embedding=embedding, counted_from="config")


def read_safetensors_header(stream: BinaryIO) -> dict[str, Any]:
    """The JSON header at the start of a safetensors file: 8 bytes of length, then the JSON."""
    prefix = stream.read(8)
    if len(prefix) != 8:
        raise ValueError("not a safetensors file: shorter than its length prefix")
    (length,) = struct.unpack("<Q", prefix)
    if length > MAX_HEADER_BYTES:
        raise ValueError(f"not a safetensors file: a header of {length} bytes")
    header: dict[str, Any] = json.loads(stream.read(length))
    return header


@dataclass(frozen=True)
class BaseModelFiles:
    """A base model's tokenizer and config in a local folder, and its parameter count."""

    directory: Path
    architecture: Architecture
    parameters: ParameterCount


def shape_record(architecture: Architecture, parameters: ParameterCount) -> dict[str, Any]:
    """The shape as the catalog row keeps it (`BaseModelEntry.shape`)."""
    return {"architecture": asdict(architecture), "parameters": asdict(parameters)}


def shape_from_record(record: dict[str, Any] | None) -> tuple[Architecture, ParameterCount] | None:
    """A catalog row's shape; None when it has none or another version wrote it differently."""
    if not record:
        return None
    try:
        return Architecture(**record["architecture"]), ParameterCount(**record["parameters"])
    except (KeyError, TypeError):
        return None


def base_model_files(
    source: str, store: ObjectStore | None = None, cache_dir: Path | None = None
) -> BaseModelFiles:
    """Everything but the weights of the base model at `source`, and its parameters counted.
    `store` and `cache_dir` (where its files are fetched to) are needed only for a `store:` source."""
    if source.startswith("store:"):
        if store is None or cache_dir is None:
            raise ValueError(f"reading {source} needs the object store and a cache folder")
        prefix = source.removeprefix("store:").strip("/")
        directory = _download_without_weights(prefix, store, cache_dir)
        headers = [
            _store_header(store, info.key)
            for info in store.list(f"{prefix}/")
            if info.key.endswith(".safetensors")
        ]
    else:
        directory = local_model_dir(source)
        headers = []
        for path in sorted(directory.glob("*.safetensors")):
            with path.open("rb") as stream:
                headers.append(read_safetensors_header(stream))
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise InvalidInput(f"base model at {source} has no config.json", details={"field": "base_model"})
    architecture = Architecture.from_config(json.loads(config_path.read_text()))
    parameters = count_parameters(headers) if headers else parameters_from_config(architecture)
    return BaseModelFiles(directory=directory, architecture=architecture, parameters=parameters)


def _download_without_weights(prefix: str, store: ObjectStore, cache_dir: Path) -> Path:
    """The prefix's files but the weights, under a folder named by the prefix, fetched once."""
    directory = cache_dir / "base-model-files" / hashlib.sha256(prefix.encode()).hexdigest()[:24]
    if (directory / _COMPLETE).is_file():
        return directory
    for key in _non_weight_keys(store, prefix):
        store.get_file(key, directory / key.removeprefix(f"{prefix}/"))
    directory.mkdir(parents=True, exist_ok=True)
    # Written last: a folder without it was cut off and is fetched again.
    (directory / _COMPLETE).write_text(prefix)
    return directory


def _non_weight_keys(store: ObjectStore, prefix: str) -> Iterator[str]:
    for info in store.list(f"{prefix}/"):
        if not info.key.lower().endswith(WEIGHT_SUFFIXES):
            yield info.key


def _store_header(store: ObjectStore, key: str) -> dict[str, Any]:
    try:
        with store.open_read(key) as stream:
            return read_safetensors_header(stream)
    except ObjectNotFound as error:
        raise InvalidInput(f"base model file {key} is missing", details={"field": "base_model"}) from error
