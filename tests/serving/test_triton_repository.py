from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest
from tritonclient.grpc import model_config_pb2 as mc

from shared.errors import Conflict
from shared.serving.repository_check import check_repository
from shared.serving.triton_repository import model_versions, publish_classifier, read_model_config
from tests.serving.conftest import FP32_MODEL, PublishedRepository
from tests.support.tiny_classifier import LABELS


def test_published_repository_passes_the_check(published: PublishedRepository) -> None:
    assert check_repository(published.root, FP32_MODEL) == []


def test_every_config_parses_with_triton_protobuf_and_matches_the_onnx_graph(
    published: PublishedRepository,
) -> None:
    root = published.root
    graph = onnx.load(str(root / "spam_onnx" / "1" / "model.onnx")).graph
    graph_inputs = [tensor.name for tensor in graph.input]

    onnx_config = read_model_config(root / "spam_onnx")
    assert onnx_config.platform == "onnxruntime_onnx"
    assert [tensor.name for tensor in onnx_config.input] == graph_inputs
    assert {tensor.data_type for tensor in onnx_config.input} == {mc.TYPE_INT64}
    # The graph is [batch, sequence]; with max_batch_size > 0 the config leaves out the batch.
    assert onnx_config.max_batch_size > 0
    assert [list(tensor.dims) for tensor in onnx_config.input] == [[-1]] * len(graph_inputs)
    (logits,) = onnx_config.output
    assert (logits.name, logits.data_type, list(logits.dims)) == ("logits", mc.TYPE_FP32, [len(LABELS)])
    assert (root / "spam_onnx" / logits.label_filename).read_text().splitlines() == LABELS

    tokenizer_config = read_model_config(root / "spam_tokenizer")
    assert tokenizer_config.backend == "python"
    assert [(t.name, t.data_type, list(t.dims)) for t in tokenizer_config.input] == [
        ("TEXT", mc.TYPE_STRING, [1])
    ]
    assert [tensor.name for tensor in tokenizer_config.output] == graph_inputs
    assert (root / "spam_tokenizer" / "1" / "model.py").is_file()
    assert (root / "spam_tokenizer" / "1" / "tokenizer" / "tokenizer.json").is_file()

    ensemble = read_model_config(root / FP32_MODEL)
    assert ensemble.platform == "ensemble"
    tokenize, classify = ensemble.ensemble_scheduling.step
    assert (tokenize.model_name, classify.model_name) == ("spam_tokenizer", "spam_onnx")
    assert dict(tokenize.input_map) == {"TEXT": "TEXT"}
    assert dict(tokenize.output_map) == dict(classify.input_map) == {name: name for name in graph_inputs}
    assert dict(classify.output_map) == {"logits": "logits"}
    assert (root / FP32_MODEL / "1").is_dir()


def _copy(published: PublishedRepository, tmp_path: Path) -> Path:
    root = tmp_path / "repository"
    shutil.copytree(published.root, root)
    return root


def test_check_finds_dims_that_include_the_batch_dimension(
    published: PublishedRepository, tmp_path: Path
) -> None:
    root = _copy(published, tmp_path)
    config_path = root / "spam_onnx" / "config.pbtxt"
    config_path.write_text(config_path.read_text().replace("dims: 2", "dims: -1\n  dims: 2"))

    problems = check_repository(root, FP32_MODEL)

    assert any("'logits' dims [-1, 2]" in problem for problem in problems)


def test_check_finds_a_labels_file_that_does_not_fit_the_logits(
    published: PublishedRepository, tmp_path: Path
) -> None:
    root = _copy(published, tmp_path)
    (root / "spam_onnx" / "labels.txt").write_text("ham\nspam\nphishing\n")

    assert any("holds 3 labels" in problem for problem in check_repository(root, FP32_MODEL))


def test_check_finds_an_ensemble_step_fed_a_tensor_nobody_produces(
    published: PublishedRepository, tmp_path: Path
) -> None:
    root = _copy(published, tmp_path)
    config_path = root / FP32_MODEL / "config.pbtxt"
    text = config_path.read_text()
    # Rename only the classifier step's source (the last mapping), leaving the tokenizer's output.
    before, _, after = text.rpartition('value: "attention_mask"')
    config_path.write_text(before + 'value: "mask"' + after)

    problems = check_repository(root, FP32_MODEL)

    assert any("'mask' is not produced before this step" in problem for problem in problems)


def test_republishing_the_same_version_is_a_no_op_and_other_files_conflict(
    published: PublishedRepository, tmp_path: Path
) -> None:
    root = _copy(published, tmp_path)
    before = (root / "spam_onnx" / "1" / "model.onnx").read_bytes()

    publish_classifier(root, FP32_MODEL, 1, published.onnx_path, published.classifier_dir, LABELS)
    assert (root / "spam_onnx" / "1" / "model.onnx").read_bytes() == before

    other_onnx = tmp_path / "other.onnx"
    other_graph = onnx.load(str(published.onnx_path))
    other_graph.producer_version = "another build"
    onnx.save(other_graph, str(other_onnx))
    with pytest.raises(Conflict):
        publish_classifier(root, FP32_MODEL, 1, other_onnx, published.classifier_dir, LABELS)
    assert (root / "spam_onnx" / "1" / "model.onnx").read_bytes() == before
    assert not list(root.glob("*/.staging-*")), "staging folders must not be left behind"


def test_a_new_version_appears_complete_beside_the_old_one(
    published: PublishedRepository, tmp_path: Path
) -> None:
    root = _copy(published, tmp_path)

    publish_classifier(root, FP32_MODEL, 2, published.onnx_path, published.classifier_dir, LABELS)

    assert model_versions(root, "spam_onnx") == [1, 2]
    assert model_versions(root, "spam_tokenizer") == [1, 2]
    assert (root / "spam_onnx" / "2" / "model.onnx").stat().st_size == published.onnx_path.stat().st_size
    assert check_repository(root, FP32_MODEL) == []
