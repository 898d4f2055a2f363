"""What the training step is asked to do: hyperparameters and the LoRA configuration.

Plain data the pipeline reads; `shared.jobs.spec.JobSpec` composes these with what only a job knows
(datasets, evaluation, export and publish), so the pipeline can run from them without the platform.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.text import Text

# The batch the optimizer sees when `batch_size` is "auto" and the spec names no global batch.
DEFAULT_GLOBAL_BATCH_SIZE = 16
AUTO_BATCH: Literal["auto"] = "auto"

# What ONNX Runtime GenAI builds a causal LM to for CPU serving.
GenAIPrecision = Literal["fp32", "int4"]
GENAI_PRECISIONS: tuple[GenAIPrecision, ...] = ("fp32", "int4")


class LoraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(8, ge=1, le=512)
    alpha: int = Field(16, ge=1, le=4096)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    # None lets the pipeline pick the attention projections of the base model's architecture.
    target_modules: list[Text] | None = None


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(3.0, gt=0, le=100)
    learning_rate: float = Field(5e-5, gt=0, le=1.0)
    # Rows per device per forward pass, or "auto": the train stage picks the largest power of two
    # (dividing `global_batch_size`) whose memory estimate fits the worker it runs on, and
    # accumulates gradients up to `global_batch_size`; the spec that ran records the choice.
    batch_size: int | Literal["auto"] = 16
    # The rows behind one optimizer step (per device batch x accumulation). Read only with "auto";
    # with a number, batch_size x gradient_accumulation_steps is the global batch.
    global_batch_size: int | None = Field(None, ge=1, le=65536)
    eval_batch_size: int = Field(64, ge=1, le=4096)
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024)
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    max_seq_length: int = Field(128, ge=8, le=8192)
    seed: int = Field(42, ge=0)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    # For method "freeze": how many of the top encoder (or decoder) blocks train beside the head.
    freeze_top_layers: int = Field(2, ge=0, le=1000)
    early_stopping_patience: int | None = Field(None, ge=1, le=100)
    gradient_checkpointing: bool = False
    # Checkpoint every N optimizer steps (None: once per epoch).
    save_steps: int | None = Field(None, ge=1)
    save_total_limit: int = Field(2, ge=1, le=100)
    logging_steps: int = Field(5, ge=1)
    # Causal LMs: pack several conversations into each max_seq_length row. Used only where the
    # attention kernels keep packed sequences apart (FlashAttention on a GPU); elsewhere batches are
    # length-grouped with dynamic padding, and the train result says which one ran.
    packing: bool = False

    @field_validator("batch_size")
    @classmethod
    def _batch_in_range(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 4096:
            raise ValueError("batch_size must be 'auto' or a number from 1 to 4096")
        return value

    @model_validator(mode="after")
    def _batch_consistent(self) -> Hyperparameters:
        batch = self.batch_size
        if batch == AUTO_BATCH:
            if (
                "gradient_accumulation_steps" in self.model_fields_set
                and self.gradient_accumulation_steps != 1
            ):
                raise ValueError(
                    "gradient_accumulation_steps is chosen by Temper when batch_size is 'auto'; "
                    "set global_batch_size (the rows per optimizer step) instead"
                )
            if self.global_batch_size is None:
                self.global_batch_size = DEFAULT_GLOBAL_BATCH_SIZE
            return self
        if (
            self.global_batch_size is not None
            and self.global_batch_size != batch * self.gradient_accumulation_steps
        ):
            raise ValueError(
                f"global_batch_size {self.global_batch_size} is not batch_size {batch} x "
                f"gradient_accumulation_steps {self.gradient_accumulation_steps}; leave it out, or set "
                "batch_size to 'auto'"
            )
        return self

    def default_to_auto_batch(self) -> None:
        """Make "auto" the batch of a spec that chose none (causal LMs: their memory grows with the
        vocabulary and the sequence length, and a fixed default batch is what runs workers out)."""
        if not {"batch_size", "gradient_accumulation_steps"} & self.model_fields_set:
            self.batch_size = AUTO_BATCH
            self.global_batch_size = self.global_batch_size or DEFAULT_GLOBAL_BATCH_SIZE

    @property
    def auto_batch(self) -> bool:
        return self.batch_size == AUTO_BATCH

    def per_device_batch(self) -> int:
        """The per-device batch of a spec whose batch is resolved (a number, not "auto")."""
        if isinstance(self.batch_size, int):
            return self.batch_size
        raise ValueError("batch_size 'auto' is resolved by the train stage before it is used as a number")

    def with_batch(self, per_device: int, accumulation: int) -> Hyperparameters:
        """These hyperparameters with the batch resolved: what the train stage runs and records."""
        return self.model_copy(
            update={
                "batch_size": per_device,
                "gradient_accumulation_steps": accumulation,
                "global_batch_size": per_device * accumulation,
            }
        )
