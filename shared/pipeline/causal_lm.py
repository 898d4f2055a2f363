"""Build the causal LM an instruction-tuning run starts from, prepared for its method.

`full` trains every weight; `lora` trains low-rank adapters on the attention (and MLP) projections
the architecture is known for; `freeze` trains the top N decoder blocks and the final norm; `qlora`
is LoRA on a 4-bit NF4 base (CUDA and bitsandbytes only). Base models are local directories.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, TaskType, get_peft_model, prepare_model_for_kbit_training
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel

from shared.pipeline.hardware import Accelerator
from shared.pipeline.modeling import UnsupportedModelError, lora_target_modules, nf4_quantization
from shared.pipeline.spec import Hyperparameters

CAUSAL_LM_METHODS = ("full", "lora", "qlora", "freeze")


def weights_dtype(method: str, accelerator: Accelerator) -> torch.dtype:
    """The dtype the base weights are loaded in.

    A frozen LoRA base can sit in bf16 on a GPU that has it (half the memory, the adapters train in
    float32); weights that train keep float32 masters and run under the Trainer's bf16/fp16 autocast.
    """
    return torch.bfloat16 if method == "lora" and accelerator.bf16_supported else torch.float32


def load_causal_lm(
    base_model_path: Path,
    method: str,
    hyperparameters: Hyperparameters,
    accelerator: Accelerator,
    flash_attention: bool = False,
) -> PreTrainedModel | PeftModel:
    """The base model for `method`; `flash_attention` selects FlashAttention 2 (for packed batches)."""
    if method not in CAUSAL_LM_METHODS:
        raise UnsupportedModelError(
            f"method {method!r} does not apply to causal LMs; use one of {CAUSAL_LM_METHODS}"
        )
    attention = {"attn_implementation": "flash_attention_2"} if flash_attention else {}
    if method == "qlora":
        return _load_qlora(base_model_path, hyperparameters, attention)
    model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(
        base_model_path, dtype=weights_dtype(method, accelerator), **attention
    )
    if hyperparameters.gradient_checkpointing:
        # The KV cache is useless while training and conflicts with recomputing activations.
        model.config.use_cache = False
    if method == "lora":
        return _with_lora(model, hyperparameters)
    if method == "freeze":
        freeze_all_but_top_blocks(model, hyperparameters.freeze_top_layers)
    return model


def decoder_blocks(model: PreTrainedModel) -> nn.ModuleList:
    """The transformer blocks of a decoder, found by shape rather than by a table of names.

    Llama, Mistral, Qwen, Gemma and Phi-3 keep them at `model.layers`, GPT-2 at `transformer.h`,
    GPT-NeoX at `gpt_neox.layers`: the one ModuleList of the backbone holding every block.
    """
    backbone = model.base_model
    candidates = [module for module in backbone.children() if isinstance(module, nn.ModuleList)]
    if len(candidates) != 1 or len(candidates[0]) != getattr(
        model.config, "num_hidden_layers", len(candidates[0])
    ):
        raise UnsupportedModelError(
            f"method 'freeze' cannot find the decoder blocks of model type {model.config.model_type!r}"
        )
    return candidates[0]


def freeze_all_but_top_blocks(model: PreTrainedModel, top_blocks: int) -> None:
    """Leave the top `top_blocks` decoder blocks, the final norm and an untied LM head trainable."""
    blocks = decoder_blocks(model)
    if not 0 < top_blocks <= len(blocks):
        raise UnsupportedModelError(
            f"freeze_top_layers={top_blocks} must be between 1 and the model's {len(blocks)} decoder blocks"
        )
    for parameter in model.parameters():
        parameter.requires_grad = False
    trainable: list[nn.Module] = list(blocks[-top_blocks:])
    norm = getattr(model.base_model, "norm", None) or getattr(model.base_model, "ln_f", None)
    if isinstance(norm, nn.Module):
        trainable.append(norm)
    head = model.get_output_embeddings()
    # A head tied to the input embeddings would train the whole vocabulary's embeddings with it.
    if isinstance(head, nn.Module) and not getattr(model.config, "tie_word_embeddings", False):
        trainable.append(head)
    for module in trainable:
        for parameter in module.parameters():
            parameter.requires_grad = True


def merge_adapter(base_model_path: Path, adapter_dir: Path) -> PreTrainedModel:
    """The plain model with the adapter folded in, on a float32 copy of the base (for QLoRA too)."""
    base = AutoModelForCausalLM.from_pretrained(base_model_path, dtype=torch.float32)
    merged: PreTrainedModel = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    return merged


def _with_lora(model: PreTrainedModel, hyperparameters: Hyperparameters) -> PeftModel:
    lora = hyperparameters.lora
    config = PeftLoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora_target_modules(model.config.model_type, hyperparameters),
    )
    return get_peft_model(model, config)


def _load_qlora(
    base_model_path: Path, hyperparameters: Hyperparameters, attention: dict[str, str]
) -> PeftModel:
    model: Any = AutoModelForCausalLM.from_pretrained(
        base_model_path,
        quantization_config=nf4_quantization(),
        device_map={"": torch.cuda.current_device()},
        **attention,
    )
    model = prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=hyperparameters.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )
    return _with_lora(model, hyperparameters)
