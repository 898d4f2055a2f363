"""Byte-level BPE tokenizers trained on the fly (GPT-2 style: bytes as the alphabet, merges learned
from the given texts), and a tiny random model that reads with one, for tokenizer-fit tests."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast


def byte_level_bpe(texts: list[str], vocab_size: int = 3000) -> PreTrainedTokenizerFast:
    """A tiny GPT-2-style tokenizer: bytes as the alphabet, merges learned from `texts`."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )


def build_byte_level_encoder(directory: Path, texts: list[str], vocab_size: int = 3000) -> Path:
    """A tiny random GPT-2 (a text classifier can sit on it) with a byte-level BPE learned from
    `texts`; return the directory."""
    import torch
    from transformers import GPT2Config, GPT2Model

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = byte_level_bpe(texts, vocab_size)
    tokenizer.save_pretrained(directory)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=512, pad_token_id=0
    )
    GPT2Model(config).save_pretrained(directory)
    return directory
