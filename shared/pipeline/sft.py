"""Supervised fine-tuning of a causal LM on instruction rows: datasets and a spec in, a model out.

TRL's `SFTTrainer` runs the loop. It is given conversations already tokenized by
`shared.pipeline.sft_data` (labels only on the answers, the end-of-turn token included), because
the templates most small chat models ship lack the `{% generation %}` markers TRL's own
`assistant_only_loss` needs; what TRL brings on top of `transformers.Trainer` is the collator
(dynamic right padding, or padding-free batches), packing without cross-contamination (best-fit
decreasing with per-sequence position ids, for FlashAttention on GPUs), and token accounting.

Layout under `output_dir`, as for classification:

    checkpoints/checkpoint-<step>/   resumable Trainer checkpoints
    adapter/                         the peft adapter (lora, qlora)
    model/                           the merged model, its tokenizer and the chat template it was
                                     trained with, and a generation config that stops at end of turn
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from datasets import Dataset
from peft import PeftModel
from transformers import (
    AutoTokenizer,
    EarlyStoppingCallback,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PrinterCallback,
    TrainerCallback,
    set_seed,
)
from trl import SFTConfig, SFTTrainer

from shared.errors import InvalidSpec
from shared.pipeline.causal_lm import load_causal_lm, merge_adapter
from shared.pipeline.hardware import Accelerator, MixedPrecision, detect_accelerator
from shared.pipeline.modeling import count_parameters
from shared.pipeline.sft_data import TemplateSource, end_of_turn_id
from shared.pipeline.spec import Hyperparameters
from shared.pipeline.train import latest_checkpoint, progress_bars_disabled, trainer_arguments
from shared.pipeline.training_callbacks import HooksCallback, NullHooks, TrainingHooks, eval_quality_metrics

# What `packing` became on this worker, recorded with the result.
PackingMode = Literal["packed", "length_grouped"]


@dataclass
class SFTRequest:
    base_model_path: Path
    # Tokenizer with the run's chat template set (`sft_data.apply_chat_template`), and the
    # conversations it tokenized (`sft_data.tokenize_conversations`).
    tokenizer: PreTrainedTokenizerBase
    template_source: TemplateSource
    train_dataset: Dataset
    eval_dataset: Dataset | None
    method: str
    hyperparameters: Hyperparameters
    output_dir: Path
    resume_from_checkpoint: Path | None = None


@dataclass
class SFTResult:
    status: Literal["completed", "cancelled"]
    final_model_dir: Path | None
    adapter_dir: Path | None
    global_step: int
    total_steps: int
    eval_metrics: dict[str, float] = field(default_factory=dict)
    train_runtime_seconds: float = 0.0
    train_samples_per_second: float = 0.0
    # Real (non-padding) tokens per second; what packing and padding choices change.
    train_tokens_per_second: float = 0.0
    trainable_parameters: int = 0
    total_parameters: int = 0
    precision: MixedPrecision = "fp32"
    packing: PackingMode = "length_grouped"
    device: str = "cpu"


def packing_mode(requested: bool, accelerator: Accelerator) -> PackingMode:
    """Packing only where the attention kernels keep packed sequences apart (FlashAttention on a GPU);
    elsewhere packing would let each sequence attend to its neighbours, so batches are length-grouped."""
    return "packed" if requested and accelerator.flash_attention else "length_grouped"


def train_causal_lm(request: SFTRequest, hooks: TrainingHooks = NullHooks()) -> SFTResult:
    """Fine-tune `request.base_model_path` on the request's conversations; outputs as in the module doc."""
    if len(request.train_dataset) == 0:
        raise InvalidSpec("no training conversations left after tokenization")
    checkpoint = request.resume_from_checkpoint
    if checkpoint is not None and latest_checkpoint(request.output_dir) is None and not checkpoint.is_dir():
        raise InvalidSpec(f"resume_from_checkpoint {checkpoint} is not a checkpoint folder")
    with progress_bars_disabled():
        return _train(request, hooks)


def _train(request: SFTRequest, hooks: TrainingHooks) -> SFTResult:
    hyperparameters = request.hyperparameters
    accelerator = detect_accelerator()
    set_seed(hyperparameters.seed)
    packing = packing_mode(hyperparameters.packing, accelerator)
    model = load_causal_lm(
        request.base_model_path,
        request.method,
        hyperparameters,
        accelerator,
        flash_attention=packing == "packed",
    )
    trainable_parameters, total_parameters = count_parameters(model)

    hooks_callback = HooksCallback(hooks)
    callbacks: list[TrainerCallback] = [hooks_callback]
    if hyperparameters.early_stopping_patience is not None:
        if request.eval_dataset is None:
            raise InvalidSpec("early_stopping_patience needs validation rows to measure improvement on")
        callbacks.append(
            EarlyStoppingCallback(early_stopping_patience=hyperparameters.early_stopping_patience)
        )
    trainer = SFTTrainer(
        model=model,
        args=_sft_config(request, accelerator, packing),
        train_dataset=request.train_dataset,
        eval_dataset=request.eval_dataset,
        processing_class=request.tokenizer,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)
    resume_from = str(request.resume_from_checkpoint) if request.resume_from_checkpoint else None
    output = trainer.train(resume_from_checkpoint=resume_from)
    runtime = float(output.metrics["train_runtime"])
    result = SFTResult(
        status="cancelled" if hooks_callback.cancelled else "completed",
        final_model_dir=None,
        adapter_dir=None,
        global_step=trainer.state.global_step,
        total_steps=trainer.state.max_steps,
        train_runtime_seconds=runtime,
        train_samples_per_second=float(output.metrics["train_samples_per_second"]),
        train_tokens_per_second=_tokens_per_second(trainer, runtime),
        trainable_parameters=trainable_parameters,
        total_parameters=total_parameters,
        precision=accelerator.mixed_precision,
        packing=packing,
        device=accelerator.device,
    )
    if hooks_callback.cancelled:
        return result
    if request.eval_dataset is not None:
        trainer.remove_callback(hooks_callback)
        result.eval_metrics = eval_quality_metrics(trainer.evaluate())
    result.final_model_dir, result.adapter_dir = _save_final_model(request, trainer.model)
    return result


def _tokens_per_second(trainer: SFTTrainer, runtime: float) -> float:
    """Non-padding tokens this run trained on, per second of this run (a resumed run counts its part)."""
    seen = trainer.state.num_input_tokens_seen - getattr(trainer, "_initial_num_input_tokens_seen", 0)
    return float(seen) / runtime if runtime > 0 else 0.0


def _sft_config(request: SFTRequest, accelerator: Accelerator, packing: PackingMode) -> SFTConfig:
    common = trainer_arguments(
        request.hyperparameters,
        accelerator,
        request.output_dir,
        has_eval=request.eval_dataset is not None,
        best_metric="eval_loss",
        greater_is_better=False,
    )
    return SFTConfig(
        **common,
        # The conversations arrive tokenized, labelled and truncated (sft_data).
        max_length=request.hyperparameters.max_seq_length,
        packing=packing == "packed",
        packing_strategy="bfd",
        train_sampling_strategy="group_by_length" if packing != "packed" else "random",
        length_column_name="length",
        include_num_input_tokens_seen="non_padding",
    )


def _save_final_model(
    request: SFTRequest, trained: PreTrainedModel | PeftModel | object
) -> tuple[Path, Path | None]:
    final_model_dir = request.output_dir / "model"
    adapter_dir: Path | None = None
    if isinstance(trained, PeftModel):
        adapter_dir = request.output_dir / "adapter"
        trained.save_pretrained(str(adapter_dir))
        request.tokenizer.save_pretrained(adapter_dir)
        model = merge_adapter(request.base_model_path, adapter_dir)
    else:
        assert isinstance(trained, PreTrainedModel)
        model = trained
    # Generation stops where training taught the model to end its turn.
    stop = end_of_turn_id(request.tokenizer)
    model.generation_config = GenerationConfig.from_model_config(model.config)
    model.generation_config.eos_token_id = stop
    model.generation_config.pad_token_id = request.tokenizer.pad_token_id
    model.save_pretrained(final_model_dir)
    # The tokenizer goes with its chat template: evaluation and serving render prompts with it.
    request.tokenizer.save_pretrained(final_model_dir)
    return final_model_dir, adapter_dir


def load_sft_tokenizer(base_model_path: Path) -> PreTrainedTokenizerBase:
    """The base model's tokenizer, with a pad token (the end-of-sequence token when it has none)."""
    tokenizer = AutoTokenizer.from_pretrained(base_model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
