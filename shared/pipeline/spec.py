"""What the training step is asked to do: hyperparameters and the LoRA configuration.

Plain data the pipeline reads; `shared.jobs.spec.JobSpec` composes these with what only a job knows
(datasets, evaluation, export and publish), so the pipeline can run from them without the platform.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.text import Text

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
    batch_size: int = Field(16, ge=1, le=4096)
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
