"""The validate stage of a causal-LM job: the conversations under the base model's chat template.

The upload checked every row on its own; this stage measures what only the job knows: lengths in the
base model's tokens with the template the job trains with, the rows `max_seq_length` would cut, the
share of tokens that are answers (what the loss is computed on), how well the tokenizer fits the
text (unknown tokens, byte fallback, scripts), and prompts the test set shares with the train set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from shared.data.report import TextDigests, dataset_overlap, length_stats
from shared.errors import InvalidDataset
from shared.jobs.fit import FIT_SAMPLE_ROWS, conversation_texts, every_nth, fit_warnings, measure_fit
from shared.jobs.results import ValidationResult
from shared.jobs.run import JobRun
from shared.jobs.stages.causal_lm.data import job_tokenizer, load_conversations, tokenized
from shared.jobs.stages.runner import StageOutcome
from shared.pipeline.sft_data import render_prompt

# Above this share of cut training rows the job still runs, but the report says so loudly.
TRUNCATION_WARNING_SHARE = 0.2
MIN_TRAIN_CONVERSATIONS = 2


def run_validate(run: JobRun) -> StageOutcome:
    conversations = load_conversations(run)
    if len(conversations.train) < MIN_TRAIN_CONVERSATIONS:
        raise InvalidDataset(
            f"the train split holds {len(conversations.train)} conversations; at least "
            f"{MIN_TRAIN_CONVERSATIONS} are needed"
        )
    tokenizer, template_source = job_tokenizer(run)
    train = tokenized(run, "train", conversations.train, tokenizer)
    max_length = run.spec.hyperparameters.max_seq_length
    # Whole numeric columns as arrays (a million rows is a few megabytes); texts are streamed below.
    columns = train.with_format("numpy", columns=["length", "answer_tokens", "truncated"])[:]
    lengths = columns["length"].astype(np.int32)
    answer_tokens = columns["answer_tokens"].astype(np.int64)
    truncated = int(columns["truncated"].sum())
    truncated_share = truncated / len(train)

    warnings: list[str] = []
    if truncated_share > TRUNCATION_WARNING_SHARE:
        warnings.append(
            f"{truncated_share:.0%} of train conversations are longer than max_seq_length={max_length} tokens "
            "and will lose the start of their prompt (or the end of their answer)"
        )
    if template_source == "fallback":
        warnings.append("the base model has no chat template; the documented fallback template is used")
    sample = every_nth(range(len(conversations.train)), FIT_SAMPLE_ROWS)
    tokenizer_fit = measure_fit(
        conversation_texts(tokenizer, conversations.train[list(sample)]["messages"]),
        tokenizer,
        base_model=run.inputs.base_model.name,
        max_length=max_length,
        rows_total=len(conversations.train),
        truncation_warning_share=TRUNCATION_WARNING_SHARE,
    )
    warnings.extend(fit_warnings(tokenizer_fit))

    train_prompts = TextDigests.from_texts(_prompts(conversations.train, tokenizer))
    overlap: dict[str, Any] = {
        "validation": dataset_overlap(
            train_prompts, TextDigests.from_texts(_prompts(conversations.validation, tokenizer))
        )
    }
    if conversations.test is not None:
        overlap["test"] = dataset_overlap(
            train_prompts, TextDigests.from_texts(_prompts(conversations.test, tokenizer))
        )
        if overlap["test"]["rows"]:
            warnings.append(f"{overlap['test']['rows']} test prompts also appear in the train set")

    turns: Counter[int] = Counter()
    roles: Counter[str] = Counter()
    for messages in _messages(conversations.train):
        turns[len(messages)] += 1
        roles.update(message["role"] for message in messages)
    for warning in warnings:
        run.log(f"validation warning: {warning}")
    return StageOutcome(
        result=ValidationResult(
            rows={
                "train": len(conversations.train),
                "validation": len(conversations.validation),
                "test": len(conversations.test) if conversations.test is not None else None,
            },
            token_lengths={
                "tokens": length_stats(lengths),
                "max_length": max_length,
                "truncated_rows": truncated,
                "truncated_share": round(truncated_share, 4),
            },
            overlap=overlap,
            warnings=warnings,
            instructions={
                "chat_template": template_source,
                "answer_token_share": round(float(answer_tokens.sum()) / float(lengths.sum()), 4),
                "answer_tokens": length_stats(answer_tokens.astype(np.int32)),
                "messages_per_conversation": {str(count): rows for count, rows in sorted(turns.items())},
                "roles": dict(sorted(roles.items())),
            },
            tokenizer_fit=tokenizer_fit,
        )
    )


def _messages(dataset: Dataset) -> Iterator[list[dict[str, str]]]:
    for batch in dataset.select_columns(["messages"]).iter(batch_size=512):
        yield from batch["messages"]


def _prompts(dataset: Dataset, tokenizer: PreTrainedTokenizerBase) -> Iterator[str]:
    """Each conversation's prompt as the model reads it (template applied), one at a time."""
    for messages in _messages(dataset):
        yield render_prompt(tokenizer, messages[:-1])
