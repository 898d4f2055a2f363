"""Scoring a causal LM on conversations: answer-token likelihood on every row, greedy answers on a sample.

Perplexity is measured on the answer tokens only, the same tokens instruction tuning puts its loss
on (end-of-turn token included): the prompt is context, not something the model is asked to
predict. Prompts and answers are tokenized exactly as for training (`sft_data.encode_conversation`,
with the chat template the model was trained with), and generation starts where training's answers
started, greedy, stopping at the end-of-turn token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from shared.pipeline.evaluate.text_overlap import overlap_metrics
from shared.pipeline.sft_data import IGNORED_LABEL, encode_conversation, end_of_turn_id, render_prompt

Conversation = Sequence[dict[str, str]]


@dataclass(frozen=True)
class GenerationOptions:
    max_new_tokens: int = 64
    batch_size: int = 8
    # Longest prompt + answer scored; a longer row loses the start of its prompt (as in training).
    max_length: int = 1024
    # Greedy answers are generated for this many rows (the first ones, in file order).
    max_generations: int = 64
    bootstrap_resamples: int = 1000
    seed: int = 0
    confidence: float = 0.95
    # Side-by-side samples shown in the HTML report.
    sample_count: int = 8

    def __post_init__(self) -> None:
        if not 0 < self.max_new_tokens < self.max_length:
            raise ValueError(
                f"max_new_tokens ({self.max_new_tokens}) must be positive and below max_length ({self.max_length})"
            )


@dataclass(frozen=True)
class ModelScores:
    """One model on one set of conversations."""

    # Summed negative log-likelihood of each row's answer tokens, and how many there are.
    nll: np.ndarray
    tokens: np.ndarray
    # Greedy answers of the generated rows (`generated_rows` of the evaluation), in that order.
    generations: list[str]

    @property
    def perplexity(self) -> float:
        return perplexity(self.nll, self.tokens)


def perplexity(nll: np.ndarray, tokens: np.ndarray) -> float:
    """exp of the mean negative log-likelihood per answer token, over all rows together."""
    return math.exp(float(nll.sum()) / float(tokens.sum()))


def score_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: Sequence[Conversation],
    generated_rows: Sequence[int],
    options: GenerationOptions,
) -> ModelScores:
    """Answer losses on every conversation and greedy answers on `generated_rows`."""
    encoded = [
        encode_conversation(tokenizer, conversation, options.max_length) for conversation in conversations
    ]
    model.eval()
    with torch.inference_mode():
        losses = answer_losses(
            model,
            [item.input_ids for item in encoded],
            [item.labels for item in encoded],
            pad_token_id(tokenizer),
            options.batch_size,
        )
        prompts = [_prompt_ids(tokenizer, conversations[row], options) for row in generated_rows]
        generations = generate_answers(model, tokenizer, prompts, options.max_new_tokens, options.batch_size)
    return ModelScores(
        nll=np.array([loss for loss, _ in losses], dtype=np.float64),
        tokens=np.array([count for _, count in losses], dtype=np.int64),
        generations=generations,
    )


def answer_losses(
    model: PreTrainedModel,
    input_ids: Sequence[Sequence[int]],
    labels: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int,
) -> list[tuple[float, int]]:
    """Per row: summed negative log-likelihood of the labelled tokens and how many there are."""
    results: list[tuple[float, int]] = []
    device = model.device
    for start in range(0, len(input_ids), batch_size):
        batch_ids = input_ids[start : start + batch_size]
        batch_labels = labels[start : start + batch_size]
        width = max(len(ids) for ids in batch_ids)
        ids = torch.tensor([[*row, *[pad_id] * (width - len(row))] for row in batch_ids], device=device)
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in batch_ids], device=device)
        targets = torch.tensor(
            [[*row, *[IGNORED_LABEL] * (width - len(row))] for row in batch_labels], device=device
        )
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        # Position t predicts token t + 1.
        shifted = targets[:, 1:]
        token_losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), shifted, ignore_index=IGNORED_LABEL, reduction="none"
        )
        scored = shifted != IGNORED_LABEL
        for row_losses, row_scored in zip(token_losses, scored, strict=True):
            results.append((float(row_losses[row_scored].sum()), int(row_scored.sum())))
    return results


def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: Sequence[Sequence[int]],
    max_new_tokens: int,
    batch_size: int,
) -> list[str]:
    """Greedy continuation of each prompt up to the end-of-turn token, decoded without special tokens."""
    pad_id = pad_token_id(tokenizer)
    stop = end_of_turn_id(tokenizer)
    answers: list[str] = []
    device = model.device
    # PreTrainedModel's type does not show the GenerationMixin every causal-LM head has.
    generator = cast(Any, model)
    for start in range(0, len(prompt_ids), batch_size):
        batch = prompt_ids[start : start + batch_size]
        width = max(len(ids) for ids in batch)
        # Left padding, so that every prompt ends where generation starts.
        ids = torch.tensor([[*[pad_id] * (width - len(row)), *row] for row in batch], device=device)
        mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in batch], device=device)
        output = generator.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=pad_id,
            eos_token_id=stop,
        )
        answers.extend(
            text.strip() for text in tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
        )
    return answers


def overlap_of(generations: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    return overlap_metrics(list(generations), list(references))


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer has neither a pad token nor an end-of-sequence token to pad with")
    return int(pad)


def _prompt_ids(
    tokenizer: PreTrainedTokenizerBase, conversation: Conversation, options: GenerationOptions
) -> list[int]:
    ids: list[int] = tokenizer(render_prompt(tokenizer, conversation[:-1]), add_special_tokens=False)[
        "input_ids"
    ]
    # Room for the answer within max_length: a long prompt loses its start, as in training.
    return ids[-(options.max_length - options.max_new_tokens) :]
