"""The job spec: what a team asks for, with every default filled in and stored with the job.

The API accepts a `JobSpec` (plus a name) and stores it with its defaults resolved. It composes the
pipeline's own pieces (hyperparameters, the gate, the column mapping) with what only a job knows:
its datasets, its base model by name, and which optional stages run.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.data.columns import ColumnMapping
from shared.pipeline.evaluate.gate import GateSpec
from shared.pipeline.evaluate.metric_names import SUMMARY_METRICS_BY_TASK
from shared.pipeline.spec import GENAI_PRECISIONS, GenAIPrecision, Hyperparameters, LoraConfig
from shared.text import MultilineText, Text

__all__ = [
    "ColumnMapping",
    "DistillationSpec",
    "EvaluationSpec",
    "ExportSpec",
    "Hyperparameters",
    "JobSpec",
    "LoraConfig",
    "PublishSpec",
]

TaskName = Literal["text-classification", "causal-lm"]
# qlora needs a CUDA GPU (refused at submit on a deployment without GPU workers); distill is for
# text classification only (a student learns from a finished job's model).
MethodName = Literal["full", "lora", "qlora", "freeze", "distill"]
# The learning rate of a LoRA or QLoRA job that names none (full fine-tuning keeps Hyperparameters').
LORA_DEFAULT_LEARNING_RATE = 2e-4
# The dataset task each job task trains on.
DATASET_TASK_OF: dict[str, str] = {"text-classification": "text-classification", "causal-lm": "instruction"}


class EvaluationSpec(BaseModel):
    """The evaluate stage: on the test dataset (or the validation rows when there is none)."""

    model_config = ConfigDict(extra="forbid")

    # "majority" (the majority class of the train labels; classification), "base" (the base model
    # with the same template and decoding; causal LMs), "job:<id>" (another job's model) or
    # "production:<model>" (the version of a published model currently marked production).
    # Left out, it is "majority" for classification and "base" for causal LMs.
    baseline: Text | None = None
    # e.g. {"metric": "f1_macro", "min": 0.85, "better_than_baseline": true}; a failing gate stops
    # the job before export and publish with error.code = gate_failed.
    gate: GateSpec | None = None
    robustness: bool = True
    bootstrap_resamples: int = Field(1000, ge=100, le=20000)
    confidence_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    # Causal LMs: greedy answers are generated for this many test rows (perplexity covers them all).
    max_generations: int = Field(64, ge=1, le=2000)
    max_new_tokens: int = Field(64, ge=1, le=2048)

    @field_validator("baseline")
    @classmethod
    def _known_baseline(cls, value: str | None) -> str | None:
        if value in (None, "majority", "base"):
            return value
        if value.startswith("job:"):
            uuid.UUID(value.removeprefix("job:"))
            return value
        if value.startswith("production:") and value.removeprefix("production:"):
            return value
        raise ValueError("baseline must be 'majority', 'base', 'job:<job id>' or 'production:<model name>'")


class ExportSpec(BaseModel):
    """The export stage: ONNX (always, checked against PyTorch), optional ORT and TensorRT variants."""

    model_config = ConfigDict(extra="forbid")

    opset: int = Field(18, ge=14, le=23)
    # Largest absolute logit difference allowed between the FP32 ONNX and PyTorch.
    parity_tolerance: float = Field(1e-3, gt=0.0, le=1.0)
    optimize: bool = True
    int8: bool = False
    int8_min_label_agreement: float = Field(0.99, gt=0.0, le=1.0)
    # Built on a GPU export worker; elsewhere recorded as skipped with the reason.
    tensorrt: bool = True
    max_batch_size: int = Field(32, ge=1, le=4096)
    # Causal LMs: ONNX Runtime GenAI builds for CPU serving. FP32 must give the same greedy text as
    # PyTorch on `check_prompts` test prompts; INT4 may lose this much answer perplexity (relative
    # to FP32) before it is rejected and left out.
    genai: list[GenAIPrecision] = Field(default_factory=lambda: list(GENAI_PRECISIONS))
    check_prompts: int = Field(8, ge=1, le=256)
    int4_perplexity_tolerance: float = Field(0.15, gt=0.0, le=10.0)


class PublishSpec(BaseModel):
    """The publish stage: a new version of `model` in the Triton repository."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    # Move the `production` alias to the new version (only when the evaluation gate passed).
    promote: bool = False
    # What is served: classifiers the FP32 ONNX (optimized when built) or the INT8 one; causal LMs
    # the FP32 or the INT4 ONNX Runtime GenAI build.
    serve: Literal["fp32", "int8", "int4"] = "fp32"


class DistillationSpec(BaseModel):
    """method "distill": the student (this job's base model) learns from a finished job's model."""

    model_config = ConfigDict(extra="forbid")

    teacher_job_id: uuid.UUID
    # Softmax temperature of both teacher and student in the soft-target term.
    temperature: float = Field(2.0, gt=0.0, le=20.0)
    # Weight of the soft-target KL term; the hard-label cross-entropy gets 1 - alpha.
    alpha: float = Field(0.5, ge=0.0, le=1.0)


class JobSpec(BaseModel):
    """A job spec with defaults filled in. Dataset and base model fields are references by id/name."""

    model_config = ConfigDict(extra="forbid")

    base_model: Text
    task: TaskName = "text-classification"
    method: MethodName = "full"
    train_dataset_id: uuid.UUID
    validation_dataset_id: uuid.UUID | None = None
    validation_split: float | None = Field(None, gt=0.0, lt=0.5)
    test_dataset_id: uuid.UUID | None = None
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    # Causal LMs: a Jinja chat template to train, evaluate and serve with instead of the base model's
    # (a documented fallback is used when the base model has none).
    chat_template: MultilineText | None = Field(None, min_length=1, max_length=20_000)
    distillation: DistillationSpec | None = None
    # None skips the evaluate stage.
    evaluation: EvaluationSpec | None = Field(default_factory=EvaluationSpec)
    # None skips the stage; publishing needs an export, so `publish` alone fills in `export`.
    export: ExportSpec | None = None
    publish: PublishSpec | None = None

    @field_validator("base_model")
    @classmethod
    def _base_model_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("base_model must not be empty")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> JobSpec:
        if self.method in ("lora", "qlora") and "learning_rate" not in self.hyperparameters.model_fields_set:
            # Adapters start at zero and train few weights: they want a larger step than full fine-tuning.
            self.hyperparameters.learning_rate = LORA_DEFAULT_LEARNING_RATE
        if self.validation_dataset_id is not None and self.validation_split is not None:
            raise ValueError("give validation_dataset_id or validation_split, not both")
        if self.publish is not None and self.export is None:
            self.export = ExportSpec()
        if self.task == "causal-lm":
            self.hyperparameters.default_to_auto_batch()
            self._check_causal_lm()
        else:
            self._check_classification()
        return self

    def _check_classification(self) -> None:
        if self.chat_template is not None:
            raise ValueError("chat_template applies to causal-lm jobs only")
        if (self.method == "distill") != (self.distillation is not None):
            raise ValueError("method 'distill' and a distillation section go together")
        evaluation = self.evaluation
        if evaluation is not None:
            if evaluation.baseline is None:
                # A student is judged against its teacher; other classifiers against the majority class.
                teacher = self.distillation.teacher_job_id if self.distillation else None
                evaluation.baseline = f"job:{teacher}" if teacher else "majority"
            if evaluation.baseline == "base":
                raise ValueError(
                    "baseline 'base' is for causal-lm jobs; a classifier compares with 'majority'"
                )
            _check_gate_metric(evaluation.gate, "text-classification")
        if self.publish is not None and self.publish.serve == "int4":
            raise ValueError("publish.serve 'int4' is for causal-lm jobs")
        if (
            self.publish is not None
            and self.publish.serve == "int8"
            and not (self.export and self.export.int8)
        ):
            raise ValueError("publish.serve is 'int8' but export.int8 is false")

    def _check_causal_lm(self) -> None:
        if self.method == "distill" or self.distillation is not None:
            raise ValueError("method 'distill' is for text-classification jobs")
        evaluation = self.evaluation
        if evaluation is not None:
            if evaluation.baseline is None:
                evaluation.baseline = "base"
            if evaluation.baseline == "majority":
                raise ValueError("baseline 'majority' is for classifiers; a causal LM compares with 'base'")
            _check_gate_metric(evaluation.gate, "causal-lm")
        if self.publish is not None:
            if self.publish.serve == "int8":
                raise ValueError("publish.serve 'int8' is for classifiers; causal LMs serve 'fp32' or 'int4'")
            genai = self.export.genai if self.export else []
            if not genai:
                raise ValueError("publishing a causal LM needs export.genai to build fp32 or int4")
            if self.publish.serve not in genai:
                raise ValueError(f"publish.serve is {self.publish.serve!r} but export.genai builds {genai}")

    def stages(self) -> list[str]:
        """The stages this job runs, in order."""
        return [
            "validate",
            "train",
            *(stage for stage in ("evaluate", "export", "publish") if self.wants_stage(stage)),
        ]

    def wants_stage(self, stage: str) -> bool:
        """Whether an optional stage after training (evaluate, export, publish) runs for this spec."""
        if stage == "evaluate":
            return self.evaluation is not None
        if stage == "export":
            return self.export is not None
        if stage == "publish":
            return self.publish is not None
        return False


def _check_gate_metric(gate: GateSpec | None, task: str) -> None:
    if gate is not None and gate.metric not in SUMMARY_METRICS_BY_TASK[task]:
        raise ValueError(
            f"gate metric {gate.metric!r} is not measured for {task} jobs; "
            f"choose from {list(SUMMARY_METRICS_BY_TASK[task])}"
        )
