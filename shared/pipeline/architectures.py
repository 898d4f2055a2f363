"""What Temper knows about model architectures, by `config.model_type`, without loading a model.

Kept free of torch so that the API can refuse a spec at submit time (a LoRA job on an architecture
with no default target modules and none named is a 422 there, not a failed train stage).
"""

from __future__ import annotations

from typing import Final

# The projections LoRA adapts when the spec names none. Encoders: query, key and value, which carry
# most of what fine-tuning changes in attention. Decoders: every attention projection and the MLP's,
# the usual choice for instruction tuning (adapting attention alone learns noticeably less).
_LLAMA_STYLE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DEFAULT_LORA_TARGET_MODULES: Final[dict[str, list[str]]] = {
    # Encoders (text classification).
    "bert": ["query", "key", "value"],
    "roberta": ["query", "key", "value"],
    "xlm-roberta": ["query", "key", "value"],
    "camembert": ["query", "key", "value"],
    "electra": ["query", "key", "value"],
    "ernie": ["query", "key", "value"],
    "distilbert": ["q_lin", "k_lin", "v_lin"],
    "deberta-v2": ["query_proj", "key_proj", "value_proj"],
    # Decoders (causal LMs).
    "llama": _LLAMA_STYLE,
    "mistral": _LLAMA_STYLE,
    "qwen2": _LLAMA_STYLE,
    "qwen3": _LLAMA_STYLE,
    "gemma": _LLAMA_STYLE,
    "gemma2": _LLAMA_STYLE,
    "gemma3_text": _LLAMA_STYLE,
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
}


def default_lora_targets(model_type: str) -> list[str] | None:
    """The default LoRA target modules of `model_type`, or None when Temper knows none."""
    targets = DEFAULT_LORA_TARGET_MODULES.get(model_type)
    return list(targets) if targets is not None else None
