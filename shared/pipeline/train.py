"""The training step for text classification: rows and a spec in, a trained model on disk out.

Plain Python around `transformers.Trainer`; the worker wraps it and passes `TrainingHooks` that
record progress, upload checkpoints and carry the cancel flag. Layout under `output_dir`:

    checkpoints/checkpoint-<step>/   the Trainer's own checkpoints (resumable)
    adapter/                         the peft adapter (lora, qlora)
    model/                           the final model and tokenizer, loadable with
                                     AutoModelForSequenceClassification (LoRA merged in)
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from peft import PeftModel
from sklearn.metrics import accuracy_score, f1_score
from transformers import (
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    EvalPrediction,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging as transformers_logging

from shared.errors import InvalidSpec
from shared.pipeline.distill import TEACHER_LOGITS, Distillation, DistillationTrainer, teacher_logits
from shared.pipeline.hardware import Accelerator, MixedPrecision, detect_accelerator
from shared.pipeline.modeling import (
    SUPPORTED_METHODS,
    count_parameters,
    load_classifier,
    load_tokenizer,
    merge_lora_adapter,
)
from shared.pipeline.spec import Hyperparameters
from shared.pipeline.training_callbacks import (
    HooksCallback,
    NullHooks,
    TrainingHooks,
    TrainingProgress,
    eval_quality_metrics,
)

__all__ = [
    "NullHooks",
    "TrainRequest",
    "TrainResult",
    "TrainRow",
    "TrainingHooks",
    "TrainingProgress",
    "checkpoints_dir",
    "encode_rows",
    "latest_checkpoint",
    "train_classifier",
]

BEST_MODEL_METRIC = "eval_f1_macro"
_CHECKPOINT_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


class InvalidTrainRequest(InvalidSpec, ValueError):
    """The request cannot train as given; the message says which field or row to fix."""


@dataclass(frozen=True)
class TrainRow:
    text: str
    label: str
    text_pair: str | None = None


@dataclass
class TrainRequest:
    base_model_path: Path
    labels: list[str]
    train_rows: list[TrainRow]
    eval_rows: list[TrainRow] | None
    method: str
    hyperparameters: Hyperparameters
    output_dir: Path
    # A checkpoint-<step> folder written by an earlier attempt of the same run.
    resume_from_checkpoint: Path | None = None
    # method "distill": the teacher whose soft targets the student learns.
    distillation: Distillation | None = None


@dataclass
class TrainResult:
    status: Literal["completed", "cancelled"]
    # None when cancelled: a cancelled run keeps its checkpoint but produces no model.
    final_model_dir: Path | None
    adapter_dir: Path | None
    last_checkpoint_dir: Path | None
    global_step: int
    total_steps: int
    # eval_loss, eval_accuracy, eval_f1_macro of the final model; empty without eval rows or when cancelled.
    eval_metrics: dict[str, float] = field(default_factory=dict)
    train_runtime_seconds: float = 0.0
    train_samples_per_second: float = 0.0
    # Real tokens (cut at max_seq_length, without padding) per second, as for causal LMs.
    train_tokens_per_second: float = 0.0
    trainable_parameters: int = 0
    total_parameters: int = 0
    precision: MixedPrecision = "fp32"
    device: str = "cpu"


def checkpoints_dir(output_dir: Path) -> Path:
    return output_dir / "checkpoints"


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, for resuming after a crash.

    The Trainer writes trainer_state.json last, so a folder without it was cut off mid-save.
    """
    folder = checkpoints_dir(output_dir)
    if not folder.is_dir():
        return None
    complete = [
        (int(match.group(1)), path)
        for path in folder.iterdir()
        if (match := _CHECKPOINT_NAME.match(path.name)) and (path / TRAINER_STATE_NAME).is_file()
    ]
    return max(complete)[1] if complete else None


def encode_rows(
    tokenizer: PreTrainedTokenizerBase, rows: Sequence[TrainRow], labels: list[str], max_seq_length: int
) -> list[dict[str, list[int] | int]]:
    """Tokenize rows without padding (the collator pads each batch to its own longest row)."""
    with_pairs = sum(row.text_pair is not None for row in rows)
    if 0 < with_pairs < len(rows):
        raise InvalidTrainRequest("either every row has a text_pair or none does")
    label_ids = {label: index for index, label in enumerate(labels)}
    encoded = tokenizer(
        [row.text for row in rows],
        [row.text_pair for row in rows] if with_pairs else None,
        truncation=True,
        max_length=max_seq_length,
    )
    features = [
        dict(zip(encoded.keys(), values, strict=True)) for values in zip(*encoded.values(), strict=True)
    ]
    for feature, row in zip(features, rows, strict=True):
        feature["labels"] = label_ids[row.label]
    return features


def train_classifier(request: TrainRequest, hooks: TrainingHooks = NullHooks()) -> TrainResult:
    """Fine-tune `request.base_model_path` on the request's rows; see the module docstring for outputs."""
    _validate(request)
    with progress_bars_disabled():
        return _train(request, hooks)


def _train(request: TrainRequest, hooks: TrainingHooks) -> TrainResult:
    hyperparameters = request.hyperparameters
    accelerator = detect_accelerator()

    # Seeded before the model is built: the new head's random init is part of what must repeat.
    set_seed(hyperparameters.seed)
    tokenizer = load_tokenizer(request.base_model_path)
    model = load_classifier(request.base_model_path, request.labels, request.method, hyperparameters)
    trainable_parameters, total_parameters = count_parameters(model)

    train_features = encode_rows(
        tokenizer, request.train_rows, request.labels, hyperparameters.max_seq_length
    )
    eval_features = (
        encode_rows(tokenizer, request.eval_rows, request.labels, hyperparameters.max_seq_length)
        if request.eval_rows
        else None
    )
    if request.distillation is not None:
        _add_teacher_logits(request, request.distillation, train_features, request.train_rows)
        if eval_features is not None and request.eval_rows:
            _add_teacher_logits(request, request.distillation, eval_features, request.eval_rows)

    hooks_callback = HooksCallback(hooks)
    callbacks: list[TrainerCallback] = [hooks_callback]
    if hyperparameters.early_stopping_patience is not None:
        callbacks.append(
            EarlyStoppingCallback(early_stopping_patience=hyperparameters.early_stopping_patience)
        )
    distillation = request.distillation
    trainer_options: dict[str, Any] = (
        {"temperature": distillation.temperature, "alpha": distillation.alpha} if distillation else {}
    )
    trainer = (DistillationTrainer if distillation else Trainer)(
        **trainer_options,
        model=model,
        args=_training_arguments(request, accelerator, has_eval=eval_features is not None),
        train_dataset=train_features,
        eval_dataset=eval_features,
        processing_class=tokenizer,
        # Multiples of 8 let GPU tensor cores run mixed precision at full speed; on CPU they only add padding.
        data_collator=DataCollatorWithPadding(
            tokenizer, pad_to_multiple_of=8 if accelerator.cuda_available else None
        ),
        compute_metrics=_classification_metrics,
        callbacks=callbacks,
    )
    # With tqdm disabled the Trainer prints every log dict to stdout; the hooks already carry them.
    trainer.remove_callback(PrinterCallback)

    resume_from = str(request.resume_from_checkpoint) if request.resume_from_checkpoint else None
    train_output = trainer.train(resume_from_checkpoint=resume_from)
    result = TrainResult(
        status="cancelled" if hooks_callback.cancelled else "completed",
        final_model_dir=None,
        adapter_dir=None,
        last_checkpoint_dir=latest_checkpoint(request.output_dir),
        global_step=trainer.state.global_step,
        total_steps=trainer.state.max_steps,
        train_runtime_seconds=train_output.metrics["train_runtime"],
        train_samples_per_second=train_output.metrics["train_samples_per_second"],
        train_tokens_per_second=train_output.metrics["train_samples_per_second"]
        * _mean_tokens_per_row(train_features),
        trainable_parameters=trainable_parameters,
        total_parameters=total_parameters,
        precision=accelerator.mixed_precision,
        device=accelerator.device,
    )
    if hooks_callback.cancelled:
        return result

    if eval_features is not None:
        # The hooks already got every per-epoch evaluation; this one measures the model being shipped
        # (the best checkpoint under early stopping) and is returned, not reported again.
        trainer.remove_callback(hooks_callback)
        result.eval_metrics = eval_quality_metrics(trainer.evaluate())
    result.final_model_dir, result.adapter_dir = _save_final_model(request, trainer, tokenizer)
    return result


def _mean_tokens_per_row(features: Sequence[dict[str, Any]]) -> float:
    """Tokens per encoded row (truncated, no padding): the Trainer counts samples, dry runs tokens."""
    return sum(len(feature["input_ids"]) for feature in features) / len(features) if features else 0.0


@contextmanager
def progress_bars_disabled() -> Iterator[None]:
    """Silence the tqdm bars transformers draws while loading and saving weights.

    Worker logs are structured lines; progress travels through the hooks instead.
    """
    were_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if were_enabled:
            transformers_logging.enable_progress_bar()


def _validate(request: TrainRequest) -> None:
    if request.method not in SUPPORTED_METHODS:
        raise InvalidTrainRequest(
            f"unknown training method {request.method!r}; expected one of {', '.join(SUPPORTED_METHODS)}"
        )
    if len(request.labels) < 2 or len(set(request.labels)) != len(request.labels):
        raise InvalidTrainRequest(f"labels must be at least two distinct names, got {request.labels!r}")
    if not request.train_rows:
        raise InvalidTrainRequest("train_rows is empty")
    known = set(request.labels)
    for split, rows in (("train_rows", request.train_rows), ("eval_rows", request.eval_rows or [])):
        unknown = [(index, row.label) for index, row in enumerate(rows) if row.label not in known]
        if unknown:
            shown = ", ".join(f"row {index}: {label!r}" for index, label in unknown[:5])
            raise InvalidTrainRequest(f"{split} has {len(unknown)} rows with labels not in labels ({shown})")
    if (request.method == "distill") != (request.distillation is not None):
        raise InvalidTrainRequest(
            "method 'distill' needs a teacher (distillation), and a teacher needs method 'distill'"
        )
    if request.hyperparameters.early_stopping_patience is not None and not request.eval_rows:
        raise InvalidTrainRequest("early_stopping_patience needs eval_rows to measure improvement on")
    checkpoint = request.resume_from_checkpoint
    if checkpoint is not None and not (checkpoint / TRAINER_STATE_NAME).is_file():
        raise InvalidTrainRequest(f"resume_from_checkpoint {checkpoint} is not a complete checkpoint")


def _add_teacher_logits(
    request: TrainRequest,
    distillation: Distillation,
    features: list[dict[str, Any]],
    rows: Sequence[TrainRow],
) -> None:
    pairs = [row.text_pair or "" for row in rows] if any(row.text_pair for row in rows) else None
    logits = teacher_logits(
        distillation,
        [row.text for row in rows],
        pairs,
        request.labels,
        request.hyperparameters.max_seq_length,
    )
    for feature, row_logits in zip(features, logits, strict=True):
        feature[TEACHER_LOGITS] = row_logits.astype(np.float32).tolist()


def trainer_arguments(
    hyperparameters: Hyperparameters,
    accelerator: Accelerator,
    output_dir: Path,
    has_eval: bool,
    best_metric: str,
    greater_is_better: bool,
) -> dict[str, Any]:
    """The Trainer arguments every Temper training run shares (classification and SFT alike).

    Evaluation runs each epoch. Under early stopping with step checkpoints it follows the
    checkpoints instead: the Trainer can only return to a best model that was saved when it was
    measured, by `best_metric`.
    """
    early_stopping = hyperparameters.early_stopping_patience is not None
    save_steps = hyperparameters.save_steps
    if not has_eval:
        eval_strategy, eval_steps = "no", None
    elif early_stopping and save_steps is not None:
        eval_strategy, eval_steps = "steps", save_steps
    else:
        eval_strategy, eval_steps = "epoch", None
    precision = accelerator.mixed_precision
    return {
        "output_dir": str(checkpoints_dir(output_dir)),
        "num_train_epochs": hyperparameters.epochs,
        "learning_rate": hyperparameters.learning_rate,
        "per_device_train_batch_size": hyperparameters.per_device_batch(),
        "per_device_eval_batch_size": hyperparameters.eval_batch_size,
        "gradient_accumulation_steps": hyperparameters.gradient_accumulation_steps,
        # transformers 5 reads a float below 1 as a share of the total steps (warmup_ratio is gone).
        "warmup_steps": hyperparameters.warmup_ratio,
        "weight_decay": hyperparameters.weight_decay,
        "seed": hyperparameters.seed,
        "eval_strategy": eval_strategy,
        "eval_steps": eval_steps,
        "save_strategy": "steps" if save_steps is not None else "epoch",
        "save_steps": save_steps if save_steps is not None else 500,
        "save_total_limit": hyperparameters.save_total_limit,
        "logging_strategy": "steps",
        "logging_steps": hyperparameters.logging_steps,
        "load_best_model_at_end": early_stopping,
        "metric_for_best_model": best_metric if early_stopping else None,
        "greater_is_better": greater_is_better if early_stopping else None,
        # transformers 5 checkpoints non-reentrantly: layers above frozen ones (freeze, lora) still get gradients.
        "activation_checkpointing": hyperparameters.gradient_checkpointing,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "dataloader_pin_memory": accelerator.cuda_available,
        "report_to": "none",
        "disable_tqdm": True,
        # With restore_callback_states_from_checkpoint a resumed run would also restore the
        # TrainerControl saved by a cancel (should_training_stop) and end the resumed run at once;
        # early stopping's patience restarts instead.
        "restore_callback_states_from_checkpoint": False,
    }


def _training_arguments(request: TrainRequest, accelerator: Accelerator, has_eval: bool) -> TrainingArguments:
    return TrainingArguments(
        **trainer_arguments(
            request.hyperparameters, accelerator, request.output_dir, has_eval, BEST_MODEL_METRIC, True
        ),
        train_sampling_strategy="group_by_length",
        # Distillation rows carry the teacher's logits, which the model's forward does not take;
        # the distillation loss removes them before the forward.
        remove_unused_columns=request.distillation is None,
    )


def _classification_metrics(prediction: EvalPrediction) -> dict[str, float]:
    logits = (
        prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    )
    predicted = np.argmax(logits, axis=-1)
    expected = prediction.label_ids
    return {
        "accuracy": float(accuracy_score(expected, predicted)),
        "f1_macro": float(f1_score(expected, predicted, average="macro", zero_division=0)),
    }


def _save_final_model(
    request: TrainRequest, trainer: Trainer, tokenizer: PreTrainedTokenizerBase
) -> tuple[Path, Path | None]:
    final_model_dir = request.output_dir / "model"
    trained = trainer.model
    assert isinstance(trained, PreTrainedModel | PeftModel)
    if request.method in ("lora", "qlora"):
        adapter_dir = request.output_dir / "adapter"
        trained.save_pretrained(str(adapter_dir))
        tokenizer.save_pretrained(adapter_dir)
        merged = merge_lora_adapter(request.base_model_path, adapter_dir, request.labels)
        merged.save_pretrained(final_model_dir)
    else:
        adapter_dir = None
        trained.save_pretrained(str(final_model_dir))
    tokenizer.save_pretrained(final_model_dir)
    return final_model_dir, adapter_dir
