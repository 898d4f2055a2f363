"""The validate stage: the job's datasets checked against its spec and its base model's tokenizer.

Uploads were validated on their own; this stage checks what only the job knows: the split, the
labels across datasets, lengths in tokens of the chosen base model, how well that model's tokenizer
fits the text (unknown tokens, byte fallback, scripts), and train/test overlap.
"""

from __future__ import annotations

from typing import Any, cast

from transformers import AutoTokenizer

from shared.data.report import dataset_overlap, token_length_stats
from shared.errors import InvalidDataset
from shared.jobs.fit import FIT_SAMPLE_ROWS, classification_texts, every_nth, fit_warnings, measure_fit
from shared.jobs.results import ValidationResult
from shared.jobs.run import JobRun
from shared.jobs.stages.data import base_model_dir, load_job_rows
from shared.jobs.stages.runner import StageOutcome

# Above this share of truncated training rows the job still runs, but the report says so loudly.
TRUNCATION_WARNING_SHARE = 0.2


def run_validate(run: JobRun) -> StageOutcome:
    rows = load_job_rows(run)
    problems: list[str] = []
    warnings: list[str] = []

    train_labels = set(rows.labels)
    missing_in_train = sorted({row.label for row in rows.validation} - train_labels)
    if missing_in_train:
        problems.append(f"labels {missing_in_train} are in the validation rows but not in the train rows")
    if rows.test is not None:
        unseen = sorted({row.label for row in rows.test} - train_labels)
        if unseen:
            problems.append(f"labels {unseen} are in the test dataset but not in the train rows")
    if len(train_labels) < 2:
        problems.append("the train rows hold fewer than two classes")
    if problems:
        raise InvalidDataset("; ".join(problems))

    tokenizer = AutoTokenizer.from_pretrained(base_model_dir(run))
    max_length = run.spec.hyperparameters.max_seq_length
    has_pairs = any(row.text_pair for row in rows.train)
    token_lengths = token_length_stats(
        [row.text for row in rows.train],
        tokenizer,
        max_length=max_length,
        pairs=[row.text_pair for row in rows.train] if has_pairs else None,
    )
    truncated_share = cast(float, token_lengths["truncated_share"])
    if truncated_share > TRUNCATION_WARNING_SHARE:
        warnings.append(
            f"{truncated_share:.0%} of train rows are longer than max_seq_length={max_length} tokens and will be cut"
        )
    tokenizer_fit = measure_fit(
        classification_texts(every_nth(rows.train, FIT_SAMPLE_ROWS)),
        tokenizer,
        base_model=run.inputs.base_model.name,
        max_length=max_length,
        rows_total=len(rows.train),
        truncation_warning_share=TRUNCATION_WARNING_SHARE,
    )
    warnings.extend(fit_warnings(tokenizer_fit))

    overlap: dict[str, Any] = {"validation": dataset_overlap(rows.train, rows.validation)}
    if rows.test is not None:
        overlap["test"] = dataset_overlap(rows.train, rows.test)
        if overlap["test"]["rows"]:
            warnings.append(f"{overlap['test']['rows']} test rows also appear in the train rows")

    counts = dict.fromkeys(rows.labels, 0)
    for row in rows.train:
        counts[row.label] += 1
    for warning in warnings:
        run.log(f"validation warning: {warning}")
    return StageOutcome(
        result=ValidationResult(
            rows={
                "train": len(rows.train),
                "validation": len(rows.validation),
                "test": len(rows.test) if rows.test is not None else None,
            },
            labels=rows.labels,
            train_label_counts=counts,
            token_lengths=token_lengths,
            overlap=overlap,
            warnings=warnings,
            tokenizer_fit=tokenizer_fit,
        )
    )
