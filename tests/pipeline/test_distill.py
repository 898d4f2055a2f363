"""Distillation: the soft-target loss, and a student that learns what its teacher predicts.

The teacher is a tiny BERT trained on real sms_spam rows. The student is trained on the same texts
with every label flipped: with the soft targets alone (alpha 1) it must follow the teacher and
ignore the wrong labels; with the hard labels alone (alpha 0) it must learn the flipped labels. A
loss that mixed them wrongly, or a teacher never consulted, fails one of the two.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from shared.pipeline.distill import Distillation, soft_target_loss, teacher_logits
from shared.pipeline.evaluate.predict import load_classifier, predict_probabilities
from shared.pipeline.spec import Hyperparameters
from shared.pipeline.train import InvalidTrainRequest, TrainRequest, TrainRow, train_classifier
from tests.support.tiny_classifier import LABELS, sms_spam_rows, train_tiny_classifier
from tests.support.tiny_models import build_tiny_bert


def test_soft_target_loss_is_temperature_squared_kl_of_the_softened_distributions() -> None:
    student = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]])
    teacher = torch.tensor([[1.0, 0.0, -1.0], [3.0, -2.0, 0.0]])
    temperature = 2.5
    expected = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist(), strict=True):
        p = np.exp(np.array(t_row) / temperature)
        p /= p.sum()
        q = np.exp(np.array(s_row) / temperature)
        q /= q.sum()
        expected += float((p * np.log(p / q)).sum())
    expected = expected / 2 * temperature**2
    assert float(soft_target_loss(student, teacher, temperature)) == pytest.approx(expected, rel=1e-5)
    assert float(soft_target_loss(teacher, teacher, temperature)) == pytest.approx(0.0, abs=1e-6)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_classifier(tmp_path_factory.mktemp("teacher"), steps=120)


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return sms_spam_rows("train", 160, seed=3)


def flipped(rows: list[dict[str, str]]) -> list[TrainRow]:
    other = {LABELS[0]: LABELS[1], LABELS[1]: LABELS[0]}
    return [TrainRow(text=row["text"], label=other[row["label"]]) for row in rows]


def distilled_student(teacher_dir: Path, rows: list[dict[str, str]], alpha: float, folder: Path) -> Path:
    student_base = build_tiny_bert(folder / "student-base", [row["text"] for row in rows], seed=1)
    result = train_classifier(
        TrainRequest(
            base_model_path=student_base,
            labels=LABELS,
            train_rows=flipped(rows),
            eval_rows=None,
            method="distill",
            hyperparameters=Hyperparameters(epochs=6, batch_size=16, learning_rate=3e-3, max_seq_length=48),
            output_dir=folder / "run",
            distillation=Distillation(teacher_dir=teacher_dir, temperature=2.0, alpha=alpha),
        )
    )
    assert result.final_model_dir is not None
    return result.final_model_dir


def predicted_labels(model_dir: Path, texts: list[str]) -> list[str]:
    classifier = load_classifier(model_dir)
    probabilities = predict_probabilities(classifier, texts, max_length=48)
    return [classifier.labels[index] for index in probabilities.argmax(axis=1)]


@pytest.mark.usefixtures("one_torch_thread")
def test_with_soft_targets_alone_the_student_follows_the_teacher_not_the_labels(
    teacher_dir: Path, rows: list[dict[str, str]], tmp_path: Path
) -> None:
    texts = [row["text"] for row in rows]
    teacher_says = predicted_labels(teacher_dir, texts)
    student_says = predicted_labels(distilled_student(teacher_dir, rows, alpha=1.0, folder=tmp_path), texts)
    agreement = np.mean([a == b for a, b in zip(student_says, teacher_says, strict=True)])
    assert agreement > 0.9, agreement


@pytest.mark.usefixtures("one_torch_thread")
def test_with_hard_labels_alone_the_student_learns_the_flipped_labels(
    teacher_dir: Path, rows: list[dict[str, str]], tmp_path: Path
) -> None:
    texts = [row["text"] for row in rows]
    teacher_says = predicted_labels(teacher_dir, texts)
    student_says = predicted_labels(distilled_student(teacher_dir, rows, alpha=0.0, folder=tmp_path), texts)
    labels = [row.label for row in flipped(rows)]
    accuracy = np.mean([a == b for a, b in zip(student_says, labels, strict=True)])
    agreement = np.mean([a == b for a, b in zip(student_says, teacher_says, strict=True)])
    assert accuracy > 0.8 and agreement < 0.3, (accuracy, agreement)


def test_teacher_logits_follow_the_students_label_order(
    teacher_dir: Path, rows: list[dict[str, str]]
) -> None:
    texts = [row["text"] for row in rows[:8]]
    as_trained = teacher_logits(Distillation(teacher_dir), texts, None, LABELS, 48)
    reordered = teacher_logits(Distillation(teacher_dir), texts, None, list(reversed(LABELS)), 48)
    assert np.allclose(as_trained[:, ::-1], reordered)
    assert not math.isclose(float(as_trained[0, 0]), float(as_trained[0, 1]))


def test_distill_needs_a_teacher_and_a_teacher_needs_distill(tmp_path: Path, teacher_dir: Path) -> None:
    base = dict(
        base_model_path=teacher_dir,
        labels=LABELS,
        train_rows=[TrainRow("a", LABELS[0]), TrainRow("b", LABELS[1])],
        eval_rows=None,
        hyperparameters=Hyperparameters(),
        output_dir=tmp_path,
    )
    with pytest.raises(InvalidTrainRequest, match="needs a teacher"):
        train_classifier(TrainRequest(method="distill", **base))  # type: ignore[arg-type]
    with pytest.raises(InvalidTrainRequest, match="needs a teacher"):
        train_classifier(TrainRequest(method="full", distillation=Distillation(teacher_dir), **base))  # type: ignore[arg-type]
