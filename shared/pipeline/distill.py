"""Knowledge distillation for text classification: a student learns the teacher's soft targets.

The loss is Hinton et al.'s: `alpha * T² * KL(teacher_T || student_T) + (1 - alpha) * CE(labels)`,
where `_T` is a softmax at temperature T (the T² keeps the soft term's gradients on the scale of the
hard term's as T grows). The teacher's logits are computed once, before training, on the raw texts
with the teacher's own tokenizer (teacher and student need not share one), reordered to the
student's label order, and carried in each row as `teacher_logits`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional
from transformers import Trainer

from shared.errors import InvalidSpec
from shared.pipeline.evaluate.predict import load_classifier, predict_logits

TEACHER_LOGITS = "teacher_logits"


@dataclass(frozen=True)
class Distillation:
    teacher_dir: Path
    temperature: float = 2.0
    alpha: float = 0.5


def teacher_logits(
    distillation: Distillation,
    texts: Sequence[str],
    text_pairs: Sequence[str] | None,
    labels: Sequence[str],
    max_length: int,
    batch_size: int = 64,
) -> np.ndarray:
    """The teacher's logits for each text, columns in the order of `labels` (the student's)."""
    teacher = load_classifier(distillation.teacher_dir)
    missing = sorted(set(labels) - set(teacher.labels))
    if missing:
        raise InvalidSpec(f"the teacher model never learned labels {missing} of the train rows")
    logits = predict_logits(
        teacher, list(texts), list(text_pairs) if text_pairs else None, batch_size, max_length
    )
    order = [teacher.labels.index(label) for label in labels]
    return logits[:, order]


def soft_target_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(teacher/T) ‖ softmax(student/T)), averaged over the batch."""
    return (
        functional.kl_div(
            functional.log_softmax(student / temperature, dim=-1),
            functional.log_softmax(teacher / temperature, dim=-1),
            reduction="batchmean",
            log_target=True,
        )
        * temperature**2
    )


class DistillationTrainer(Trainer):
    """A Trainer whose loss mixes the teacher's soft targets with the hard labels."""

    def __init__(self, *args: Any, temperature: float, alpha: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.temperature = temperature
        self.alpha = alpha

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        teacher = inputs.pop(TEACHER_LOGITS)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        student = outputs.logits
        hard = functional.cross_entropy(student, labels)
        soft = soft_target_loss(student.float(), teacher.to(student.device).float(), self.temperature)
        loss = self.alpha * soft + (1.0 - self.alpha) * hard
        return (loss, outputs) if return_outputs else loss
