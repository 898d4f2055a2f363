"""A causal-LM job's conversations on the worker: Arrow tables from the validated files, split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from shared.data.errors import DatasetFileError
from shared.errors import InvalidDataset
from shared.jobs.run import DatasetRef, JobRun
from shared.jobs.stages.data import base_model_dir, dataset_file
from shared.pipeline.sft import load_sft_tokenizer
from shared.pipeline.sft_data import (
    TemplateSource,
    apply_chat_template,
    conversations_dataset,
    split_conversations,
    tokenize_conversations,
)


@dataclass
class Conversations:
    train: Dataset
    validation: Dataset
    test: Dataset | None

    @property
    def evaluation(self) -> tuple[str, Dataset]:
        """The conversations a trained model is judged on: the test set, or the validation rows."""
        return ("test", self.test) if self.test is not None else ("validation", self.validation)


def read_conversations(run: JobRun, dataset: DatasetRef) -> Dataset:
    try:
        return conversations_dataset(
            dataset_file(run, dataset), dataset.format, run.ctx.cache_dir() / "conversations"
        )
    except DatasetFileError as exc:
        raise InvalidDataset(f"dataset {dataset.id} no longer passes validation: {exc.reason}") from exc


def load_conversations(run: JobRun) -> Conversations:
    inputs = run.inputs
    train = read_conversations(run, inputs.train)
    if inputs.validation is not None:
        validation = read_conversations(run, inputs.validation)
    else:
        train, validation = split_conversations(
            train, inputs.spec.validation_split or 0.1, inputs.spec.hyperparameters.seed
        )
    test = read_conversations(run, inputs.test) if inputs.test is not None else None
    return Conversations(train=train, validation=validation, test=test)


def job_tokenizer(
    run: JobRun, model_dir: Path | None = None
) -> tuple[PreTrainedTokenizerBase, TemplateSource]:
    """The tokenizer of the base model (or `model_dir`) with the chat template the job trains with."""
    tokenizer = load_sft_tokenizer(model_dir or base_model_dir(run))
    return tokenizer, apply_chat_template(tokenizer, run.spec.chat_template)


def tokenized(run: JobRun, name: str, conversations: Dataset, tokenizer: PreTrainedTokenizerBase) -> Dataset:
    """`conversations` tokenized for this job, cached in its work folder on this worker."""
    max_length = run.spec.hyperparameters.max_seq_length
    cache_file = run.work_dir("tokenized") / f"{name}-{max_length}.arrow"
    return tokenize_conversations(conversations, tokenizer, max_length, cache_file)
