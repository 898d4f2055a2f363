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
from shared.pipeline.spec import Hyperparameters, LoraConfig

__all__ = [
    "ColumnMapping",
    "EvaluationSpec",
    "ExportSpec",
    "Hyperparameters",
    "JobSpec",
    "LoraConfig",
    "PublishSpec",
]

TaskName = Literal["text-classification"]
# qlora needs a CUDA GPU: the train stage refuses it with a clear error on a CPU worker.
MethodName = Literal["full", "lora", "qlora", "freeze"]


class EvaluationSpec(BaseModel):
    """The evaluate stage: on the test dataset (or the validation rows when there is none)."""

    model_config = ConfigDict(extra="forbid")

    # "majority" (the majority class of the train labels), "job:<id>" (another job's model) or
    # "production:<model>" (the version of a published model currently marked production).
    baseline: str = "majority"
    # e.g. {"metric": "f1_macro", "min": 0.85, "better_than_baseline": true}; a failing gate stops
    # the job before export and publish with error.code = gate_failed.
    gate: GateSpec | None = None
    robustness: bool = True
    bootstrap_resamples: int = Field(1000, ge=100, le=20000)
    confidence_threshold: float = Field(0.5, gt=0.0, lt=1.0)

    @field_validator("baseline")
    @classmethod
    def _known_baseline(cls, value: str) -> str:
        if value == "majority":
            return value
        if value.startswith("job:"):
            uuid.UUID(value.removeprefix("job:"))
            return value
        if value.startswith("production:") and value.removeprefix("production:"):
            return value
        raise ValueError("baseline must be 'majority', 'job:<job id>' or 'production:<model name>'")


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


class PublishSpec(BaseModel):
    """The publish stage: a new version of `model` in the Triton repository."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    # Move the `production` alias to the new version (only when the evaluation gate passed).
    promote: bool = False
    # Which ONNX the ensemble serves: the FP32 export (optimized when built) or the INT8 one.
    serve: Literal["fp32", "int8"] = "fp32"


class JobSpec(BaseModel):
    """A job spec with defaults filled in. Dataset and base model fields are references by id/name."""

    model_config = ConfigDict(extra="forbid")

    base_model: str
    task: TaskName = "text-classification"
    method: MethodName = "full"
    train_dataset_id: uuid.UUID
    validation_dataset_id: uuid.UUID | None = None
    validation_split: float | None = Field(None, gt=0.0, lt=0.5)
    test_dataset_id: uuid.UUID | None = None
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
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
    def _one_validation_source(self) -> JobSpec:
        if self.validation_dataset_id is not None and self.validation_split is not None:
            raise ValueError("give validation_dataset_id or validation_split, not both")
        if self.publish is not None and self.export is None:
            self.export = ExportSpec()
        if (
            self.publish is not None
            and self.publish.serve == "int8"
            and not (self.export and self.export.int8)
        ):
            raise ValueError("publish.serve is 'int8' but export.int8 is false")
        return self

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
