"""Build the model a training run starts from: a sequence classifier on a local base encoder.

The method decides what trains: `full` trains everything, `lora` trains low-rank adapters on the
attention projections plus the classifier head, `freeze` trains the head, the pooler and the top
encoder layers, `qlora` is LoRA on a 4-bit quantized base (CUDA only), and `distill` trains every
weight of the student against a teacher's soft targets (`shared.pipeline.distill`). Base models are always
local directories; nothing here reaches a model hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, TaskType, get_peft_model, prepare_model_for_kbit_training
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from shared.errors import UnsupportedModel
from shared.pipeline.architectures import default_lora_targets
from shared.pipeline.hardware import require_gpu
from shared.pipeline.spec import Hyperparameters

SUPPORTED_METHODS: Final = ("full", "lora", "freeze", "qlora", "distill")

ClassifierModel = PreTrainedModel | PeftModel


class UnsupportedModelError(UnsupportedModel, ValueError):
    """The base model's architecture does not fit the requested training method."""


def load_tokenizer(base_model_path: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(base_model_path)


def load_classifier(
    base_model_path: Path, labels: list[str], method: str, hyperparameters: Hyperparameters
) -> ClassifierModel:
    """Load `base_model_path` with a fresh classification head over `labels`, prepared for `method`.

    The label maps go into the model config so that every saved copy names its outputs.
    """
    if method not in SUPPORTED_METHODS:
        raise ValueError(
            f"unknown training method {method!r}; expected one of {', '.join(SUPPORTED_METHODS)}"
        )
    if method == "qlora":
        return _load_qlora_classifier(base_model_path, labels, hyperparameters)

    model = load_base_classifier(base_model_path, labels)
    if method == "lora":
        return _wrap_with_lora(model, hyperparameters)
    if method == "freeze":
        freeze_all_but_top_layers(model, hyperparameters.freeze_top_layers)
    return model


def load_base_classifier(
    base_model_path: Path, labels: list[str], **from_pretrained_kwargs: object
) -> PreTrainedModel:
    """The base encoder with a newly initialized classification head and the label maps in its config."""
    model: PreTrainedModel = AutoModelForSequenceClassification.from_pretrained(
        base_model_path,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
        problem_type="single_label_classification",
        **from_pretrained_kwargs,
    )
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    total = sum(parameter.numel() for parameter in model.parameters())
    return trainable, total


def head_module_names(model: PreTrainedModel) -> list[str]:
    """Names of the task head's modules: the model's direct children beside the backbone.

    This finds `classifier` on BERT and `pre_classifier` + `classifier` on DistilBERT without a
    per-architecture table; children without parameters (dropout) are left out.
    """
    return [
        name
        for name, child in model.named_children()
        if name != model.base_model_prefix and any(True for _ in child.parameters())
    ]


def lora_target_modules(model_type: str, hyperparameters: Hyperparameters) -> list[str]:
    """The spec's target modules, or the projections known for this architecture."""
    if hyperparameters.lora.target_modules:
        return list(hyperparameters.lora.target_modules)
    targets = default_lora_targets(model_type)
    if targets is None:
        raise UnsupportedModelError(
            f"LoRA has no default target modules for model type {model_type!r}; "
            "set hyperparameters.lora.target_modules to the names of its attention projections"
        )
    return targets


def freeze_all_but_top_layers(model: PreTrainedModel, top_layers: int) -> None:
    """Leave only the head, the pooler and the top `top_layers` encoder layers trainable.

    Works on BERT-like encoders (a backbone with `encoder.layer`); anything else is refused rather
    than frozen in some guessed way.
    """
    backbone = model.base_model
    encoder_layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if not isinstance(encoder_layers, nn.ModuleList):
        raise UnsupportedModelError(
            f"method 'freeze' needs a BERT-like encoder with encoder.layer; "
            f"model type {model.config.model_type!r} has none"
        )
    if top_layers > len(encoder_layers):
        raise UnsupportedModelError(
            f"freeze_top_layers={top_layers} but the model has only {len(encoder_layers)} encoder layers"
        )

    for parameter in model.parameters():
        parameter.requires_grad = False
    trainable_modules: list[nn.Module] = [getattr(model, name) for name in head_module_names(model)]
    pooler = getattr(backbone, "pooler", None)
    if pooler is not None:
        trainable_modules.append(pooler)
    if top_layers > 0:
        trainable_modules.extend(encoder_layers[-top_layers:])
    for module in trainable_modules:
        for parameter in module.parameters():
            parameter.requires_grad = True


def merge_lora_adapter(base_model_path: Path, adapter_dir: Path, labels: list[str]) -> PreTrainedModel:
    """A plain classifier: the unquantized base with the trained adapter folded into its weights.

    Merging into a fresh full-precision base (not the training copy) serves both LoRA and QLoRA: a
    4-bit base cannot hold merged weights without losing what the adapter learned.
    """
    base = load_base_classifier(base_model_path, labels, dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, adapter_dir)
    merged: PreTrainedModel = adapted.merge_and_unload()
    return merged


def _wrap_with_lora(model: PreTrainedModel, hyperparameters: Hyperparameters) -> PeftModel:
    lora = hyperparameters.lora
    peft_config = PeftLoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora_target_modules(model.config.model_type, hyperparameters),
        # The head is new and random: it must train in full and be saved with the adapter.
        modules_to_save=head_module_names(model),
    )
    return get_peft_model(model, peft_config)


def nf4_quantization(skip_modules: list[str] | None = None) -> BitsAndBytesConfig:
    """QLoRA's 4-bit NF4 base with double quantization, computing in bf16 where the GPU has it.

    Refuses with a clear reason on a worker without a CUDA GPU or without bitsandbytes.
    """
    accelerator = require_gpu("qlora")
    try:
        import bitsandbytes  # noqa: F401  (transformers needs it for 4-bit loading)
    except ImportError as error:
        raise UnsupportedModelError(
            "qlora needs the bitsandbytes package on this worker (the gpu extra)"
        ) from error
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if accelerator.bf16_supported else torch.float16,
        llm_int8_skip_modules=skip_modules,
    )


def _load_qlora_classifier(
    base_model_path: Path, labels: list[str], hyperparameters: Hyperparameters
) -> PeftModel:
    # The head trains in full precision; quantizing it would make it untrainable.
    quantization = nf4_quantization(skip_modules=_head_module_names_from_config(base_model_path, labels))
    model = load_base_classifier(
        base_model_path,
        labels,
        quantization_config=quantization,
        device_map={"": torch.cuda.current_device()},
    )
    model = prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=hyperparameters.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )
    return _wrap_with_lora(model, hyperparameters)


def _head_module_names_from_config(base_model_path: Path, labels: list[str]) -> list[str]:
    """Head module names without loading weights: build the architecture on the meta device."""
    config = AutoConfig.from_pretrained(base_model_path, num_labels=len(labels))
    with torch.device("meta"):
        skeleton = AutoModelForSequenceClassification.from_config(config)
    return head_module_names(skeleton)
