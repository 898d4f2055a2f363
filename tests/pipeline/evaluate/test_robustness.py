from __future__ import annotations

import numpy as np
import pytest

from shared.pipeline.evaluate.robustness import PERTURBATIONS, perturb_texts, robustness_report
from tests.support.datasets import sample_rows


@pytest.fixture(scope="module")
def sms_texts() -> list[str]:
    return [row["text"] for row in sample_rows("sms_spam", "test", 200)]


@pytest.mark.parametrize("kind", PERTURBATIONS)
def test_perturbations_are_deterministic_per_seed_and_change_the_text(
    kind: str, sms_texts: list[str]
) -> None:
    first = perturb_texts(sms_texts, kind, seed=3)
    assert perturb_texts(sms_texts, kind, seed=3) == first
    changed = [before != after for before, after in zip(sms_texts, first, strict=True)]
    # A one-word row cannot be truncated and a row without letters has no case; nearly all others change.
    assert np.mean(changed) > 0.95


@pytest.mark.parametrize("kind", ["typos", "casing", "whitespace"])
def test_another_seed_gives_other_perturbations(kind: str, sms_texts: list[str]) -> None:
    assert perturb_texts(sms_texts, kind, seed=4) != perturb_texts(sms_texts, kind, seed=3)


def test_each_perturbation_does_what_its_name_says() -> None:
    text = "Please call me back about the refund today"
    assert perturb_texts([text], "casing")[0] in (text.upper(), text.lower())
    assert perturb_texts([text], "whitespace")[0].split() == text.split()
    assert perturb_texts([text], "truncation")[0] == "Please call me back"
    typo = perturb_texts([text], "typos")[0]
    assert typo != text
    assert sorted(typo.replace(" ", "")) == sorted(text.replace(" ", "")) or len(typo) == len(text) - 1


def test_row_perturbation_does_not_depend_on_the_other_rows(sms_texts: list[str]) -> None:
    whole = perturb_texts(sms_texts[:10], "typos", seed=1)
    assert perturb_texts(sms_texts[:3], "typos", seed=1) == whole[:3]


def test_unknown_perturbation_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown perturbation 'emoji'"):
        perturb_texts(["hi"], "emoji")


def test_robustness_report_shows_a_case_sensitive_model_breaking_under_casing() -> None:
    labels = ["calm", "shouting"]
    texts = ["hello there friend", "WHERE IS MY CARD", "thanks a lot", "I WANT A REFUND NOW"]
    y_true = ["calm", "shouting", "calm", "shouting"]

    def predict(batch: list[str]) -> np.ndarray:
        shouting = np.array([text.strip().isupper() for text in batch], dtype=float)
        return np.stack([1 - shouting, shouting], axis=1)

    report = robustness_report(texts, y_true, predict(texts), labels, predict, seed=0)
    by_kind = {entry["perturbation"]: entry for entry in report["perturbations"]}
    assert report["clean"]["accuracy"] == 1.0
    assert by_kind["whitespace"]["accuracy_delta"] == 0.0
    assert by_kind["whitespace"]["flipped_share"] == 0.0
    assert by_kind["casing"]["accuracy_delta"] < 0
    assert by_kind["casing"]["flipped_share"] > 0
