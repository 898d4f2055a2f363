from __future__ import annotations

from pathlib import Path

import pytest

from shared.pipeline.export.onnx_export import OnnxExportInfo, export_classifier_onnx
from tests.support.tiny_classifier import sms_spam_rows, train_tiny_classifier


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_classifier(tmp_path_factory.mktemp("tiny-classifier"))


@pytest.fixture(scope="session")
def exported(classifier_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> OnnxExportInfo:
    return export_classifier_onnx(classifier_dir, tmp_path_factory.mktemp("onnx") / "model.onnx")


@pytest.fixture(scope="session")
def parity_texts() -> list[str]:
    return [row["text"] for row in sms_spam_rows("test", 48)]
