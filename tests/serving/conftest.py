from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from shared.pipeline.export.genai import GenAIExportResult
from shared.pipeline.export.onnx_export import export_classifier_onnx, quantize_int8
from shared.serving.triton_repository import VllmDeployment, publish_causal_lm, publish_classifier
from tests.support.tiny_classifier import LABELS, sms_spam_rows, train_tiny_classifier
from tests.support.triton_stub import triton_server  # noqa: F401  (the fixture, for this package)

FP32_MODEL = "spam"
INT8_MODEL = "spam_int8"
CHAT_MODEL = "chat"
CHAT_INT4_MODEL = "chat_int4"


@dataclass(frozen=True)
class PublishedRepository:
    root: Path
    classifier_dir: Path
    onnx_path: Path
    texts: list[str]
    pytorch_labels: list[str]


def pytorch_labels(model_dir: Path, texts: list[str], max_length: int = 128) -> list[str]:
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    labels = []
    for start in range(0, len(texts), 32):
        encoded = tokenizer(
            texts[start : start + 32],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        with torch.no_grad():
            indices = model(**encoded).logits.argmax(-1).tolist()
        labels += [model.config.id2label[index] for index in indices]
    return labels


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory) -> PublishedRepository:
    """The tiny classifier published twice: FP32 as `spam` and its INT8 variant as `spam_int8`."""
    work = tmp_path_factory.mktemp("serving")
    classifier_dir = train_tiny_classifier(work)
    onnx_path = export_classifier_onnx(classifier_dir, work / "export" / "model.onnx").path
    texts = [row["text"] for row in sms_spam_rows("test", 200)]
    int8_path = quantize_int8(classifier_dir, onnx_path, work / "export" / "model.int8.onnx", texts[:48]).path
    root = work / "repository"
    publish_classifier(root, FP32_MODEL, 1, onnx_path, classifier_dir, LABELS)
    publish_classifier(root, INT8_MODEL, 1, int8_path, classifier_dir, LABELS)
    return PublishedRepository(
        root=root,
        classifier_dir=classifier_dir,
        onnx_path=onnx_path,
        texts=texts,
        pytorch_labels=pytorch_labels(classifier_dir, texts),
    )


@dataclass(frozen=True)
class PublishedChat:
    root: Path
    chat_template: str


@pytest.fixture(scope="session")
def published_chat(
    tiny_chat_genai: GenAIExportResult, tmp_path_factory: pytest.TempPathFactory
) -> PublishedChat:
    """The tiny chat Llama published as `chat` (FP32, with a vLLM model for GPUs) and `chat_int4`."""
    fp32, int4 = tiny_chat_genai.variants["fp32"].directory, tiny_chat_genai.variants["int4"].directory
    assert fp32 is not None and int4 is not None
    root = tmp_path_factory.mktemp("llm-repository")
    vllm = VllmDeployment("s3://temper-merged/jobs/tiny-chat/merged", load_format="runai_streamer")
    publish_causal_lm(root, CHAT_MODEL, 1, fp32, "fp32", vllm=vllm)
    publish_causal_lm(root, CHAT_INT4_MODEL, 1, int4, "int4")
    return PublishedChat(root=root, chat_template=(fp32 / "chat_template.jinja").read_text())
