"""A dry run: everything a submission would be told before any GPU time, and nothing written.

The spec is checked as a submission checks it (the same errors), then the datasets' files are read
from the object store (an evenly spread sample when a set is large) and tokenized with the base
model's tokenizer (its files, never its weights): token counts per split, the training steps, the
data-tokenizer fit, an estimated duration from what earlier jobs of the base model measured on the
same worker class (`shared.jobs.estimate`, with a first-principles estimate when there are none),
and the peak memory. No row, no event and no task comes of it.

The tokenizer libraries are imported here, inside the dry run, not when the API starts.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from sqlalchemy.orm import Session

from shared.base_models.files import BaseModelFiles, base_model_files
from shared.data.columns import ColumnMapping
from shared.data.errors import DatasetFileError
from shared.data.formats import DatasetFormat
from shared.data.instructions import iter_instruction_rows
from shared.data.validation import ClassificationRow, iter_classification_rows
from shared.db.models import Dataset
from shared.errors import InvalidInput, StageError
from shared.jobs.estimate import (
    GIB,
    DurationEstimate,
    JobShape,
    MemoryEstimate,
    TrainingPlan,
    WorkerClass,
    estimate_duration,
    estimate_memory,
    method_units,
    plan_training,
    trainable_parameters,
)
from shared.jobs.fit import classification_texts, conversation_texts, measure_fit
from shared.jobs.history import JobHistoryRepository
from shared.jobs.memory_fit import TRAIN_QUEUE, MemoryPolicy, ModelShape, choose_batch, worker_class_of
from shared.jobs.results import TokenizerFit
from shared.jobs.service import CheckedSpec, JobService
from shared.jobs.spec import JobSpec
from shared.pipeline.spec import Hyperparameters
from shared.settings import get_settings
from shared.storage.base import ObjectStore
from shared.workers.capacity import fresh_workers

Split = Literal["train", "validation", "test"]
# The validate stage warns about truncation above this share; the dry run says the same.
TRUNCATION_WARNING_SHARE = 0.2


@dataclass(frozen=True)
class DryRunLimits:
    """How much work a dry run may do, and what it assumes where nothing was measured."""

    sample_rows: int = 2000
    # Effective training FLOP/s of one worker of each class, for first-principles estimates.
    cpu_flops: float = 5e10
    gpu_flops: float = 2e14
    # The memory one train worker has (device memory on a GPU); a larger estimate is a warning.
    worker_memory_bytes: int | None = None


@dataclass(frozen=True)
class SplitTokens:
    """Tokens of one split as the model reads them: special tokens (and the chat template) in,
    cut at max_seq_length, no padding."""

    split: Split
    rows: int
    sampled_rows: int
    tokens: int
    mean: float
    p95: float
    max: int
    truncated_share: float


@dataclass(frozen=True)
class BaseModelSummary:
    name: str
    model_type: str | None
    parameters: int
    embedding_parameters: int
    trainable_parameters: int
    counted_from: str
    layers: int
    hidden_size: int


@dataclass
class DryRun:
    spec: dict[str, Any]
    worker_class: WorkerClass
    base_model: BaseModelSummary
    tokens: list[SplitTokens]
    steps: TrainingPlan
    duration: DurationEstimate
    memory: MemoryEstimate
    tokenizer_fit: TokenizerFit
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Sample:
    """Per-row token lengths of an evenly spread sample of one file, and its texts for the fit."""

    lengths: np.ndarray  # as trained: cut at max_seq_length
    truncated: np.ndarray
    texts: list[str]
    seconds_per_row: float

    @property
    def mean(self) -> float:
        return float(self.lengths.mean()) if self.lengths.size else 0.0

    def counts(self, split: Split, rows: int) -> SplitTokens:
        empty = not self.lengths.size
        return SplitTokens(
            split=split,
            rows=rows,
            sampled_rows=int(self.lengths.size),
            tokens=round(self.mean * rows),
            mean=round(self.mean, 1),
            p95=0.0 if empty else round(float(np.percentile(self.lengths, 95)), 1),
            max=0 if empty else int(self.lengths.max()),
            truncated_share=0.0 if empty else round(float(self.truncated.mean()), 4),
        )


class DryRunService:
    def __init__(
        self,
        session: Session,
        store: ObjectStore,
        cache_dir: Path,
        gpu_workers: bool = False,
        limits: DryRunLimits = DryRunLimits(),
    ) -> None:
        self.session = session
        self.store = store
        self.cache_dir = cache_dir
        self.gpu_workers = gpu_workers
        self.limits = limits

    def dry_run(self, team_id: uuid.UUID, spec: JobSpec) -> DryRun:
        checked = JobService(self.session, gpu_workers=self.gpu_workers).check_spec(team_id, spec)
        spec = checked.spec
        worker_class: WorkerClass = "gpu" if self.gpu_workers else "cpu"
        files = base_model_files(checked.base_model.source, self.store, self.cache_dir)
        tokenizer = _load_tokenizer(files.directory, spec)
        max_length = spec.hyperparameters.max_seq_length
        notes: list[str] = []

        train_sample = self._sample(checked.train, spec, tokenizer, "train", notes)
        train_rows, validation_rows = _split_rows(checked.train.row_count, spec.validation_split)
        tokens = [train_sample.counts("train", train_rows)]
        if checked.validation is not None:
            validation_sample = self._sample(checked.validation, spec, tokenizer, "validation", notes)
            tokens.append(validation_sample.counts("validation", checked.validation.row_count))
        else:
            tokens.append(train_sample.counts("validation", validation_rows))
            notes.append(
                f"validation: {validation_rows:,} rows split from the train set "
                f"(validation_split {spec.validation_split}), counted from its sample"
            )
        if checked.test is not None:
            test_sample = self._sample(checked.test, spec, tokenizer, "test", notes)
            tokens.append(test_sample.counts("test", checked.test.row_count))
        counts = {entry.split: entry for entry in tokens}

        fit = measure_fit(
            iter(train_sample.texts),
            tokenizer,
            base_model=spec.base_model,
            max_length=max_length,
            rows_total=checked.train.row_count,
            truncation_warning_share=TRUNCATION_WARNING_SHARE,
        )
        batch_warnings: list[str] = []
        resolved = self._resolve_batch(spec, files, worker_class, notes, batch_warnings)
        spec = spec.model_copy(update={"hyperparameters": resolved})
        plan = plan_training(train_rows, train_sample.mean, spec.hyperparameters)
        duration = self._duration(
            checked, files, plan, counts, train_sample.seconds_per_row, worker_class, team_id
        )
        memory = estimate_memory(
            architecture=files.architecture,
            parameters=files.parameters,
            method=spec.method,
            hyperparameters=spec.hyperparameters,
            longest_row_tokens=counts["train"].max,
            worker_class=worker_class,
            causal_lm=spec.task == "causal-lm",
        )
        warnings = [f"{warning.message}: {warning.suggestion}" for warning in fit.warnings] + batch_warnings
        warnings += self._memory_warnings(memory, worker_class)
        return DryRun(
            spec=spec.model_dump(mode="json"),
            worker_class=worker_class,
            base_model=BaseModelSummary(
                name=spec.base_model,
                model_type=files.architecture.model_type,
                parameters=files.parameters.total,
                embedding_parameters=files.parameters.embedding,
                trainable_parameters=trainable_parameters(
                    files.architecture, files.parameters, spec.method, spec.hyperparameters
                ),
                counted_from=files.parameters.counted_from,
                layers=files.architecture.layers,
                hidden_size=files.architecture.hidden_size,
            ),
            tokens=tokens,
            steps=plan,
            duration=duration,
            memory=memory,
            tokenizer_fit=fit,
            warnings=warnings,
            notes=notes,
        )

    # ----------------------------------------------------------------------------------------------

    def _sample(
        self, dataset: Dataset, spec: JobSpec, tokenizer: Any, split: Split, notes: list[str]
    ) -> _Sample:
        """Token lengths of every n-th row of `dataset`'s file (all rows when it is small)."""
        path = self.cache_dir / "datasets" / f"{dataset.sha256}.{dataset.format}"
        if not path.is_file():
            self.store.get_file(dataset.object_key, path)
        step = max(1, math.ceil(dataset.row_count / self.limits.sample_rows))
        if step > 1:
            notes.append(
                f"{split}: token counts measured on one row in {step} "
                f"({math.ceil(dataset.row_count / step):,} of {dataset.row_count:,}), scaled to the whole set"
            )
        fmt = cast(DatasetFormat, dataset.format)
        max_length = spec.hyperparameters.max_seq_length
        try:
            if spec.task == "causal-lm":
                return _conversation_sample(path, fmt, step, dataset.row_count, tokenizer, max_length)
            mapping = ColumnMapping.model_validate(dataset.column_mapping)
            return _classification_sample(path, fmt, mapping, step, dataset.row_count, tokenizer, max_length)
        except DatasetFileError as error:
            raise InvalidInput(
                f"dataset {dataset.id} no longer passes validation: {error.reason}",
                details={"field": f"{split}_dataset_id"},
            ) from error
        except StageError as error:  # a chat template that cannot render these conversations
            raise InvalidInput(error.message, details={"field": "chat_template"}) from error

    def _duration(
        self,
        checked: CheckedSpec,
        files: BaseModelFiles,
        plan: TrainingPlan,
        counts: dict[Split, SplitTokens],
        seconds_per_row: float,
        worker_class: WorkerClass,
        team_id: uuid.UUID,
    ) -> DurationEstimate:
        spec = checked.spec
        layers = files.architecture.layers
        evaluated = counts["test"] if "test" in counts else counts["validation"]
        shape = JobShape(
            plan=plan,
            method=spec.method,
            units=method_units(spec.method, spec.hyperparameters, layers),
            stages=spec.stages(),
            rows_validated=sum(entry.rows for entry in counts.values()),
            rows_evaluated=evaluated.rows,
            mean_tokens_per_row_evaluated=evaluated.mean,
            seconds_per_row_validated=seconds_per_row,
        )
        earlier = JobHistoryRepository(self.session).earlier_runs(checked.base_model.id, layers)
        # Matrix products cost 2 FLOPs per parameter per token; embedding tables are lookups, but a
        # causal LM's output layer multiplies by a vocabulary-sized matrix (often the tied table).
        compute_parameters = files.parameters.total - files.parameters.embedding
        if spec.task == "causal-lm":
            compute_parameters += files.architecture.vocab_size * files.architecture.hidden_size
        duration = estimate_duration(
            shape,
            worker_class,
            earlier,
            compute_parameters=compute_parameters,
            effective_flops=self.limits.gpu_flops if worker_class == "gpu" else self.limits.cpu_flops,
        )
        # Another team's jobs count in the median but are not named.
        teams = {run.job_id: run.team_id for run in earlier}
        duration.other_team_jobs = sum(1 for job_id in duration.reference_jobs if teams[job_id] != team_id)
        duration.reference_jobs = [job_id for job_id in duration.reference_jobs if teams[job_id] == team_id]
        return duration

    def _resolve_batch(
        self,
        spec: JobSpec,
        files: BaseModelFiles,
        worker_class: WorkerClass,
        notes: list[str],
        warnings: list[str],
    ) -> Hyperparameters:
        """The hyperparameters the estimates use: a batch of "auto" resolved as the train stage
        would resolve it on the largest fresh train worker (or the configured worker memory)."""
        hyperparameters = spec.hyperparameters
        if not hyperparameters.auto_batch:
            return hyperparameters
        global_batch = hyperparameters.global_batch_size or 1
        policy = MemoryPolicy.of(get_settings())
        workers = [
            worker
            for worker in fresh_workers(self.session, policy.stale_after, policy.cache_for)
            if TRAIN_QUEUE in worker.queues
        ]
        largest = max(workers, key=lambda worker: worker.capacity_bytes, default=None)
        if largest is not None:
            capacity, where = largest.capacity_bytes, f"the largest train worker, {largest.name}"
            worker_class = worker_class_of(largest)
        elif self.limits.worker_memory_bytes is not None:
            capacity, where = self.limits.worker_memory_bytes, "a train worker (train_worker_memory_gib)"
        else:
            notes.append(
                f"batch size 'auto': no train worker has registered its memory; shown at the global batch "
                f"{global_batch}, and the train stage chooses on the worker it runs on"
            )
            return hyperparameters.with_batch(global_batch, 1)
        choice = choose_batch(
            ModelShape(files.architecture, files.parameters), spec, worker_class, capacity, policy
        )
        if choice is None:
            warnings.append(
                f"batch size 'auto': not even a batch of 1 fits the {capacity / GIB:.1f} GiB of {where}; the train "
                "stage would fail out_of_memory: lower max_seq_length or turn on gradient_checkpointing"
            )
            return hyperparameters.with_batch(1, global_batch)
        notes.append(
            f"batch size 'auto': on {where} ({capacity / GIB:.1f} GiB) the train stage would choose "
            f"{choice.per_device} per device x {choice.accumulation} accumulation steps = {global_batch} "
            f"(estimated {choice.estimate.peak_bytes / GIB:.2f} GiB at {hyperparameters.max_seq_length} tokens, "
            f"{policy.margin:.0%} margin)"
        )
        return hyperparameters.with_batch(choice.per_device, choice.accumulation)

    def _memory_warnings(self, memory: MemoryEstimate, worker_class: WorkerClass) -> list[str]:
        available = self.limits.worker_memory_bytes
        if available is None or memory.peak_bytes <= available:
            return []
        return [
            f"the estimated peak memory, {memory.peak_bytes / GIB:.1f} GiB, is above the {available / GIB:.1f} GiB "
            f"of a {worker_class} train worker: lower batch_size or max_seq_length, or turn on "
            "gradient_checkpointing"
        ]


def _split_rows(row_count: int, validation_split: float | None) -> tuple[int, int]:
    """Train and validation rows of a split train set, as the splits (scikit-learn's and
    datasets') count them: the held-out part rounded up."""
    if validation_split is None:
        return row_count, 0
    held_out = math.ceil(row_count * validation_split)
    return row_count - held_out, held_out


def _every(rows: Iterator[Any], step: int) -> Iterator[Any]:
    for index, row in enumerate(rows):
        if index % step == 0:
            yield row


def _classification_sample(
    path: Path,
    fmt: DatasetFormat,
    mapping: ColumnMapping,
    step: int,
    row_count: int,
    tokenizer: Any,
    max_length: int,
) -> _Sample:
    started = time.perf_counter()
    rows: list[ClassificationRow] = list(_every(iter_classification_rows(path, fmt, mapping), step))
    read = time.perf_counter() - started
    has_pairs = any(row.text_pair for row in rows)
    encoded = tokenizer(
        [row.text for row in rows],
        [row.text_pair or "" for row in rows] if has_pairs else None,
        add_special_tokens=True,
        truncation=False,
        verbose=False,
    )
    raw = np.asarray([len(ids) for ids in encoded["input_ids"]], dtype=np.int64)
    return _Sample(
        lengths=np.minimum(raw, max_length),
        truncated=raw > max_length,
        texts=list(classification_texts(rows)),
        seconds_per_row=_per_row(read, row_count, time.perf_counter() - started - read, len(rows)),
    )


def _conversation_sample(
    path: Path, fmt: DatasetFormat, step: int, row_count: int, tokenizer: Any, max_length: int
) -> _Sample:
    from shared.pipeline.sft_data import encode_conversation

    started = time.perf_counter()
    conversations = [
        [{"role": message.role, "content": message.content} for message in row.messages]
        for row in _every(iter_instruction_rows(path, fmt), step)
    ]
    read = time.perf_counter() - started
    encoded = [encode_conversation(tokenizer, messages, max_length) for messages in conversations]
    return _Sample(
        lengths=np.asarray([len(item.input_ids) for item in encoded], dtype=np.int64),
        truncated=np.asarray([item.truncated for item in encoded], dtype=bool),
        texts=list(conversation_texts(tokenizer, conversations)),
        seconds_per_row=_per_row(read, row_count, time.perf_counter() - started - read, len(encoded)),
    )


def _per_row(read_seconds: float, rows_read: int, tokenize_seconds: float, rows_tokenized: int) -> float:
    """Seconds to read and tokenize one row, as this process just did."""
    return read_seconds / max(rows_read, 1) + tokenize_seconds / max(rows_tokenized, 1)


def _load_tokenizer(directory: Path, spec: JobSpec) -> Any:
    """The base model's tokenizer (with the job's chat template for a causal LM), imported here:
    transformers brings torch with it, which the API process does not load at start."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError) as error:
        raise InvalidInput(
            f"the tokenizer of base model '{spec.base_model}' cannot be loaded: {error}",
            details={"field": "base_model"},
        ) from error
    if spec.task == "causal-lm":
        from shared.pipeline.sft_data import apply_chat_template

        apply_chat_template(tokenizer, spec.chat_template)
    return tokenizer
