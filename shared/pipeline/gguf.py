"""Causal LMs that ship as a GGUF file: find the file, and turn it into a plain Hugging Face copy once.

Training, evaluation, the ONNX Runtime GenAI builder and vLLM all read a plain directory
(config.json, safetensors, tokenizer files, chat template); none of them reads GGUF. So a GGUF base
model is converted when it is registered, and every worker uses the converted copy.

The weights are saved in float32. A quantized GGUF (SmolLM2 ships Q4_1 and Q8_0 blocks) is
de-quantized on load: each weight becomes an fp16 block scale times a small integer (plus an fp16
offset for Q4_1). float32 holds those values exactly; bfloat16 would round them, so a "bf16 as
stored" copy would not be the model the GGUF describes. Float GGUF files (F32) come out unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from shared.errors import InvalidInput

GGUF_SUFFIX = ".gguf"
# Written last into a converted directory: its presence means the conversion finished.
CONVERTED_MARKER = "temper-converted.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
SAVED_DTYPE = "float32"


def _source_error(message: str) -> InvalidInput:
    return InvalidInput(message, details={"field": "source"})


def _package_dir(package: str) -> Path:
    """The directory of an installed package, found without importing it.

    `find_spec` of a top-level name only searches the path; a dotted name would import its parents,
    so only top-level names are accepted.
    """
    if not package or "." in package:
        raise _source_error(f"'package:{package}' must name a top-level package (no dots)")
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise _source_error(f"package '{package}' is not installed")
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    if spec.origin is None:
        raise _source_error(f"package '{package}' has no files on disk")
    return Path(spec.origin).parent


def _single_gguf_in(directory: Path, described: str) -> Path:
    candidates = sorted(directory.glob(f"*{GGUF_SUFFIX}"))
    if not candidates:
        raise _source_error(f"no {GGUF_SUFFIX} file in {described} ({directory})")
    if len(candidates) > 1:
        names = ", ".join(path.name for path in candidates)
        raise _source_error(f"{described} holds several GGUF files ({names}); name the one to use")
    return candidates[0]


def find_gguf_file(source: str | Path) -> Path:
    """The GGUF file a source names: `package:<name>` (the file beside that package's `__init__`),
    a path to a `.gguf` file, or a directory holding exactly one. A `local:` prefix is accepted."""
    text = str(source)
    if text.startswith("package:"):
        package = text.removeprefix("package:")
        return _single_gguf_in(_package_dir(package), f"package '{package}'")
    path = Path(text.removeprefix("local:")).expanduser()
    if path.is_dir():
        return _single_gguf_in(path, "directory")
    if path.suffix.lower() != GGUF_SUFFIX:
        raise _source_error(f"{path} is not a {GGUF_SUFFIX} file")
    if not path.is_file():
        raise _source_error(f"{path} does not exist")
    return path


def is_gguf_source(source: str) -> bool:
    """Whether a base-model source names a GGUF file rather than a Hugging Face directory.

    `local:`/`package:` sources that hold a config.json are plain models; a `.gguf` path, a
    directory with a GGUF file and no config.json, and a package without a `model/` directory but
    with a GGUF file beside it are GGUF. `store:` keys are GGUF when they end in `.gguf`.
    """
    if source.startswith("store:"):
        return source.lower().endswith(GGUF_SUFFIX)
    if source.startswith("package:"):
        try:
            directory = _package_dir(source.removeprefix("package:"))
        except InvalidInput:
            return False
        return not (directory / "model" / "config.json").is_file() and any(directory.glob(f"*{GGUF_SUFFIX}"))
    if source.startswith("local:"):
        path = Path(source.removeprefix("local:")).expanduser()
        if path.is_dir():
            return not (path / "config.json").is_file() and any(path.glob(f"*{GGUF_SUFFIX}"))
        return path.suffix.lower() == GGUF_SUFFIX
    return False


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_conversion_marker(directory: Path) -> dict[str, object] | None:
    """What a finished conversion recorded, or None if `directory` holds no finished conversion."""
    marker = directory / CONVERTED_MARKER
    if not marker.is_file():
        return None
    recorded: dict[str, object] = json.loads(marker.read_text())
    return recorded


def convert_gguf_to_plain(gguf_path: Path, out_dir: Path) -> Path:
    """Save the model and tokenizer of `gguf_path` as a plain float32 safetensors copy in `out_dir`.

    The tokenizer keeps the chat template stored in the GGUF (`chat_template.jinja`), since
    training, evaluation and serving all render prompts with it. Idempotent: a directory whose
    marker names the same GGUF content is returned as it is; anything else there is replaced.
    """
    gguf_path = Path(gguf_path)
    sha256 = file_sha256(gguf_path)
    marker = read_conversion_marker(out_dir)
    if marker is not None and marker.get("gguf_sha256") == sha256:
        return out_dir

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        loaded = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
        )
    except (ValueError, KeyError, OSError) as error:
        raise _source_error(f"{gguf_path.name} cannot be loaded as a causal LM: {error}") from error
    # A model loaded from GGUF counts as quantized and refuses save_pretrained, although its weights
    # are de-quantized floats: move them into a plain model built from the same config.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.eval()

    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    has_template = bool(getattr(tokenizer, "chat_template", None))
    record = {
        "gguf_file": gguf_path.name,
        "gguf_sha256": sha256,
        "dtype": SAVED_DTYPE,
        "architecture": (config.architectures or [config.model_type])[0],
        "parameters": sum(parameter.numel() for parameter in plain.parameters()),
        "chat_template": has_template,
    }
    # The marker goes last, through a rename, so it exists only once every other file does.
    with tempfile.NamedTemporaryFile("w", dir=out_dir, delete=False, suffix=".tmp") as handle:
        json.dump(record, handle, indent=2)
    os.replace(handle.name, out_dir / CONVERTED_MARKER)
    return out_dir
