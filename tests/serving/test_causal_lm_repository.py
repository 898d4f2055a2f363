"""Publishing a causal LM into the Triton repository, and checking it the way Triton would read it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from shared.errors import Conflict, InvalidInput
from shared.pipeline.export.genai import GenAIExportResult
from shared.serving.repository_check import check_repository
from shared.serving.triton_config import config_to_text
from shared.serving.triton_repository import (
    VllmDeployment,
    model_versions,
    publish_causal_lm,
    read_model_config,
)
from tests.serving.conftest import CHAT_MODEL, PublishedChat

MERGED_LOCATION = "s3://temper-merged/jobs/tiny-chat/merged"


def test_a_published_causal_lm_is_a_decoupled_python_model_with_its_files(
    published_chat: PublishedChat,
) -> None:
    root = published_chat.root
    config = read_model_config(root / CHAT_MODEL)
    assert config.backend == "python" and config.model_transaction_policy.decoupled
    assert config.max_batch_size == 0
    assert [(tensor.name, tensor.data_type) for tensor in config.input] == [("REQUEST", mc.TYPE_STRING)]
    assert config.parameters["precision"].string_value == "fp32"
    version_dir = root / CHAT_MODEL / "1"
    assert {path.name for path in version_dir.iterdir()} == {"model.py", "genai_stream.py", "genai"}
    assert (version_dir / "genai" / "chat_template.jinja").read_text() == published_chat.chat_template
    assert not list((version_dir / "genai").glob("temper-*.json"))
    assert check_repository(root, CHAT_MODEL) == []


def test_the_vllm_model_points_at_the_merged_weights(published_chat: PublishedChat) -> None:
    root = published_chat.root
    config = read_model_config(root / f"{CHAT_MODEL}_vllm")
    assert config.backend == "vllm" and config.model_transaction_policy.decoupled
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_MODEL
    engine_args = json.loads((root / f"{CHAT_MODEL}_vllm" / "1" / "model.json").read_text())
    assert engine_args["model"] == engine_args["tokenizer"] == MERGED_LOCATION
    assert engine_args["load_format"] == "runai_streamer"
    assert model_versions(root, f"{CHAT_MODEL}_vllm") == [1]


def test_a_published_version_never_changes(
    published_chat: PublishedChat, tiny_chat_genai: GenAIExportResult
) -> None:
    root = published_chat.root
    fp32, int4 = tiny_chat_genai.variants["fp32"].directory, tiny_chat_genai.variants["int4"].directory
    assert fp32 is not None and int4 is not None
    vllm = VllmDeployment(MERGED_LOCATION, load_format="runai_streamer")
    # The same files again: a no-op (a publish stage re-run after a crash).
    publish_causal_lm(root, CHAT_MODEL, 1, fp32, "fp32", vllm=vllm)
    with pytest.raises(Conflict):
        publish_causal_lm(root, CHAT_MODEL, 1, int4, "int4", vllm=vllm)
    assert read_model_config(root / CHAT_MODEL).parameters["precision"].string_value == "fp32"
    assert not [path for path in (root / CHAT_MODEL).iterdir() if path.name.startswith(".staging-")]


def test_publishing_refuses_a_directory_that_cannot_be_served(
    tiny_chat_genai: GenAIExportResult, tmp_path: Path
) -> None:
    fp32 = tiny_chat_genai.variants["fp32"].directory
    assert fp32 is not None
    broken = tmp_path / "genai"
    shutil.copytree(fp32, broken)
    (broken / "chat_template.jinja").unlink()
    with pytest.raises(InvalidInput, match="no chat template"):
        publish_causal_lm(tmp_path / "repository", CHAT_MODEL, 1, broken, "fp32")
    (broken / "genai_config.json").unlink()
    with pytest.raises(InvalidInput, match=r"genai_config\.json"):
        publish_causal_lm(tmp_path / "repository", CHAT_MODEL, 1, broken, "fp32")
    assert not (tmp_path / "repository").exists()


def _rewrite_config(model_dir: Path, change: Callable[[mc.ModelConfig], None]) -> None:
    config = read_model_config(model_dir)
    change(config)
    (model_dir / "config.pbtxt").write_text(config_to_text(config))


def _not_decoupled(root: Path) -> None:
    _rewrite_config(root / CHAT_MODEL, lambda config: config.model_transaction_policy.Clear())


def _text_as_int(root: Path) -> None:
    def change(config: mc.ModelConfig) -> None:
        config.output[0].data_type = mc.TYPE_INT32

    _rewrite_config(root / CHAT_MODEL, change)


def _no_template(root: Path) -> None:
    (root / CHAT_MODEL / "1" / "genai" / "chat_template.jinja").unlink()


def _no_decoder(root: Path) -> None:
    (root / CHAT_MODEL / "1" / "genai" / "model.onnx").unlink()


def _no_core(root: Path) -> None:
    (root / CHAT_MODEL / "1" / "genai_stream.py").unlink()


def _vllm_without_weights(root: Path) -> None:
    (root / f"{CHAT_MODEL}_vllm" / "1" / "model.json").write_text(json.dumps({"dtype": "auto"}))


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_not_decoupled, "model_transaction_policy is not decoupled"),
        (_text_as_int, "output 'TEXT' is TYPE_INT32 [1], expected TYPE_STRING [1]"),
        (_no_template, "no chat template"),
        (_no_decoder, "lacks the decoder model.onnx"),
        (_no_core, "lacks genai_stream.py"),
        (_vllm_without_weights, "must name the merged model's location"),
    ],
)
def test_the_check_names_what_triton_or_the_model_would_trip_on(
    published_chat: PublishedChat, tmp_path: Path, damage: Callable[[Path], None], problem: str
) -> None:
    root = tmp_path / "repository"
    shutil.copytree(published_chat.root, root)
    damage(root)
    problems = check_repository(root, CHAT_MODEL)
    assert any(problem in line for line in problems), problems
