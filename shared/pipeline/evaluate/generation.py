"""The generation report for causal LMs trained on instruction rows (instruction, input, output).

Perplexity is measured on the answer tokens only (the same tokens instruction tuning puts loss on):
the prompt is context, not something the model is asked to predict. Generated answers are scored
against the references with BLEU, ROUGE, exact match and token F1, and stored beside them with the
generation settings, so a reader can see what the numbers mean and rerun them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

import torch
from transformers import PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from shared.pipeline.evaluate.text_overlap import overlap_metrics

PromptFormat = Literal["auto", "chat", "alpaca"]
# Labels with this value are ignored by the loss (the convention of transformers' LM heads).
IGNORED_LABEL = -100


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float | None = None
    top_p: float | None = None
    num_beams: int = 1
    batch_size: int = 8
    # Longest prompt + answer scored for perplexity; longer rows lose the start of their prompt.
    max_length: int = 1024
    # "auto": the tokenizer's chat template when it has one, else the Alpaca prompt.
    prompt_format: PromptFormat = "auto"
    seed: int = 0
    sample_count: int = 5

    def __post_init__(self) -> None:
        if not 0 < self.max_new_tokens < self.max_length:
            raise ValueError(
                f"max_new_tokens ({self.max_new_tokens}) must be positive and below max_length ({self.max_length})"
            )


def build_prompt(row: dict[str, Any], tokenizer: PreTrainedTokenizerBase, prompt_format: str) -> str:
    instruction = str(row["instruction"]).strip()
    extra_input = str(row.get("input") or "").strip()
    if prompt_format == "chat":
        content = f"{instruction}\n\n{extra_input}" if extra_input else instruction
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
        assert isinstance(rendered, str)
        return rendered
    input_section = f"### Input:\n{extra_input}\n\n" if extra_input else ""
    return f"### Instruction:\n{instruction}\n\n{input_section}### Response:\n"


def resolve_prompt_format(tokenizer: PreTrainedTokenizerBase, prompt_format: PromptFormat) -> str:
    if prompt_format == "auto":
        return "chat" if getattr(tokenizer, "chat_template", None) else "alpaca"
    if prompt_format == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ValueError("prompt_format 'chat' needs a tokenizer with a chat template")
    return prompt_format


def _prompt_ids(prompt: str, tokenizer: PreTrainedTokenizerBase, prompt_format: str) -> list[int]:
    # A chat template already writes the special tokens it wants; the Alpaca prompt only needs BOS.
    ids: list[int] = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    if prompt_format == "alpaca" and tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id, *ids]
    return ids


def _answer_ids(answer: str, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    # The end-of-sequence token is part of the answer: predicting where to stop is part of the task.
    ids: list[int] = list(tokenizer(answer, add_special_tokens=False)["input_ids"])
    return [*ids, tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else ids


def _pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer has neither a pad token nor an end-of-sequence token to pad with")
    return int(pad)


def answer_losses(
    model: PreTrainedModel,
    prompt_ids: list[list[int]],
    answer_ids: list[list[int]],
    pad_id: int,
    batch_size: int,
    max_length: int,
) -> list[tuple[float, int]]:
    """Per row: summed negative log-likelihood of the answer tokens and how many there are."""
    results: list[tuple[float, int]] = []
    device = model.device
    for start in range(0, len(prompt_ids), batch_size):
        sequences, labels = [], []
        for prompt, answer in zip(
            prompt_ids[start : start + batch_size], answer_ids[start : start + batch_size], strict=True
        ):
            # Keep the end of the sequence: the answer must be scored whole, the prompt can lose its start.
            sequence = (prompt + answer)[-max_length:]
            label = ([IGNORED_LABEL] * len(prompt) + answer)[-max_length:]
            sequences.append(sequence)
            labels.append(label)
        width = max(len(sequence) for sequence in sequences)
        input_ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in sequences], device=device)
        attention_mask = torch.tensor(
            [[1] * len(s) + [0] * (width - len(s)) for s in sequences], device=device
        )
        targets = torch.tensor([lab + [IGNORED_LABEL] * (width - len(lab)) for lab in labels], device=device)
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
        # Position t predicts token t + 1.
        shifted_targets = targets[:, 1:]
        token_losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), shifted_targets, ignore_index=IGNORED_LABEL, reduction="none"
        )
        scored = shifted_targets != IGNORED_LABEL
        for row_losses, row_scored in zip(token_losses, scored, strict=True):
            results.append((float(row_losses[row_scored].sum()), int(row_scored.sum())))
    return results


def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: list[list[int]],
    settings: GenerationSettings,
) -> list[str]:
    """Generated continuation of each prompt, decoded without special tokens."""
    pad_id = _pad_token_id(tokenizer)
    sampling = {"temperature": settings.temperature, "top_p": settings.top_p} if settings.do_sample else {}
    answers: list[str] = []
    device = model.device
    for start in range(0, len(prompt_ids), settings.batch_size):
        # Room for the answer within max_length: a long prompt loses its start, as in answer_losses.
        prompt_room = settings.max_length - settings.max_new_tokens
        batch = [ids[-prompt_room:] for ids in prompt_ids[start : start + settings.batch_size]]
        width = max(len(ids) for ids in batch)
        # Left padding, so that every prompt ends where generation starts.
        input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in batch], device=device)
        attention_mask = torch.tensor(
            [[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device
        )
        # PreTrainedModel's type does not show the GenerationMixin every causal-LM head has.
        output = cast(Any, model).generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.do_sample,
            num_beams=settings.num_beams,
            pad_token_id=pad_id,
            eos_token_id=tokenizer.eos_token_id,
            **{key: value for key, value in sampling.items() if value is not None},
        )
        answers.extend(
            text.strip() for text in tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
        )
    return answers


def generation_report(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, Any]],
    settings: GenerationSettings | None = None,
) -> dict[str, Any]:
    """Perplexity on the answers, overlap metrics of generated answers, samples and every output."""
    settings = settings or GenerationSettings()
    if not rows:
        raise ValueError("no instruction rows to evaluate")
    prompt_format = resolve_prompt_format(tokenizer, settings.prompt_format)
    prompts = [build_prompt(row, tokenizer, prompt_format) for row in rows]
    prompt_ids = [_prompt_ids(prompt, tokenizer, prompt_format) for prompt in prompts]
    references = [str(row["output"]).strip() for row in rows]
    answer_ids = [_answer_ids(reference, tokenizer) for reference in references]

    model.eval()
    torch.manual_seed(settings.seed)
    with torch.inference_mode():
        losses = answer_losses(
            model, prompt_ids, answer_ids, _pad_token_id(tokenizer), settings.batch_size, settings.max_length
        )
        generated = generate_answers(model, tokenizer, prompt_ids, settings)

    total_loss = sum(loss for loss, _ in losses)
    total_tokens = sum(count for _, count in losses)
    outputs = [
        {
            "row": index,
            "instruction": row["instruction"],
            "input": row.get("input") or "",
            "reference": reference,
            "generated": answer,
            "answer_tokens": count,
            "answer_nll": loss,
        }
        for index, (row, reference, answer, (loss, count)) in enumerate(
            zip(rows, references, generated, losses, strict=True)
        )
    ]
    return {
        "rows": len(rows),
        "settings": {**asdict(settings), "prompt_format": prompt_format},
        "perplexity": math.exp(total_loss / total_tokens),
        "mean_answer_nll": total_loss / total_tokens,
        "answer_tokens": total_tokens,
        "metrics": overlap_metrics(generated, references),
        "samples": outputs[: settings.sample_count],
        "outputs": outputs,
        "notes": [
            "perplexity is exp of the mean negative log-likelihood over all answer tokens "
            "(end-of-sequence included), prompt tokens excluded",
            "BLEU is sacrebleu corpus BLEU (0-100); ROUGE, exact match and token F1 are row means (0-1)",
        ],
    }
