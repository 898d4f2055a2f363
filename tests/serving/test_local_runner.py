from __future__ import annotations

import pytest

from shared.errors import NotFound
from shared.serving.local_runner import LocalModelRunner
from tests.serving.conftest import FP32_MODEL, PublishedRepository
from tests.support.tiny_classifier import LABELS


def test_local_runner_gives_the_pytorch_labels_from_repository_files(published: PublishedRepository) -> None:
    runner = LocalModelRunner(published.root, FP32_MODEL, 1)

    predictions = runner.predict(published.texts)

    labels = [prediction.label for prediction in predictions]
    agreement = sum(a == b for a, b in zip(labels, published.pytorch_labels, strict=True)) / len(labels)
    assert agreement >= 0.995
    for prediction in predictions[:10]:
        assert set(prediction.scores) == set(LABELS)
        assert sum(prediction.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction.label == max(prediction.scores, key=prediction.scores.__getitem__)


def test_local_runner_reports_a_version_that_was_never_published(published: PublishedRepository) -> None:
    with pytest.raises(NotFound):
        LocalModelRunner(published.root, FP32_MODEL, 7)
