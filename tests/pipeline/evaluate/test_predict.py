from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from shared.pipeline.evaluate.predict import load_classifier, predict_classifier, predict_probabilities
from tests.support.datasets import sample_rows
from tests.support.tiny_models import build_tiny_classifier


@pytest.fixture(scope="module")
def sms_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    texts = [row["text"] for row in sample_rows("sms_spam", "test", 60, seed=2)]
    model_dir = build_tiny_classifier(tmp_path_factory.mktemp("predict"), texts, ["ham", "spam"])
    return model_dir, texts


def test_batched_length_sorted_probabilities_match_one_row_at_a_time(
    sms_case: tuple[Path, list[str]],
) -> None:
    model_dir, texts = sms_case
    classifier = load_classifier(model_dir)
    assert classifier.labels == ["ham", "spam"]
    batched = predict_probabilities(classifier, texts, batch_size=16, max_length=64)
    with torch.inference_mode():
        one_by_one = np.array(
            [
                torch.softmax(
                    classifier.model(
                        **classifier.tokenizer(text, truncation=True, max_length=64, return_tensors="pt")
                    ).logits,
                    dim=-1,
                )[0].numpy()
                for text in texts
            ]
        )
    # Rows come back in input order although they were scored sorted by length, padded per batch.
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-6)


def test_predict_classifier_loads_from_the_directory(sms_case: tuple[Path, list[str]]) -> None:
    model_dir, texts = sms_case
    probabilities = predict_classifier(model_dir, texts[:5], batch_size=2)
    assert probabilities.shape == (5, 2)


def test_text_pairs_must_align_with_texts(sms_case: tuple[Path, list[str]]) -> None:
    model_dir, texts = sms_case
    with pytest.raises(ValueError, match="3 texts but 2 text pairs"):
        predict_classifier(model_dir, texts[:3], text_pairs=texts[:2])


def test_text_pairs_change_the_prediction(sms_case: tuple[Path, list[str]]) -> None:
    model_dir, texts = sms_case
    alone = predict_classifier(model_dir, texts[:4])
    paired = predict_classifier(model_dir, texts[:4], text_pairs=texts[4:8])
    assert not np.allclose(alone, paired)
