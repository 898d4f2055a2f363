"""The validate stage: the job's datasets checked against its spec and its base model's tokenizer.

Uploads were validated on their own; this stage checks what only the job knows: the split, the
labels across datasets, lengths in tokens of the chosen base model, and train/test overlap.
"""

from __future__ import annotations

import uuid

import numpy as np

from shared.data.report import dataset_overlap
from shared.db.models import Job
from shared.errors import StageError
from shared.jobs.service import JobService
from shared.jobs.stages.context import StageContext
from shared.jobs.stages.data import base_model_dir, load_job_rows
from shared.jobs.stages.runner import StageOutcome

# Above this share of truncated training rows the job still runs, but the report says so loudly.
TRUNCATION_WARNING_SHARE = 0.2


def run_validate(ctx: StageContext, job_id: uuid.UUID) -> StageOutcome:
    spec, rows = load_job_rows(ctx, job_id)
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
        raise StageError("; ".join(problems), code="invalid_dataset")

    model_dir = base_model_dir(ctx, job_id)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    max_length = spec.hyperparameters.max_seq_length
    texts = [row.text for row in rows.train]
    pairs = [row.text_pair for row in rows.train] if any(row.text_pair for row in rows.train) else None
    encoded = tokenizer(texts, pairs, truncation=False, add_special_tokens=True)["input_ids"]
    token_lengths = np.array([len(ids) for ids in encoded])
    truncated_share = float((token_lengths > max_length).mean())
    if truncated_share > TRUNCATION_WARNING_SHARE:
        warnings.append(
            f"{truncated_share:.0%} of train rows are longer than max_seq_length={max_length} tokens and will be cut"
        )

    overlap = {"validation": dataset_overlap(rows.train, rows.validation)}
    if rows.test is not None:
        overlap["test"] = dataset_overlap(rows.train, rows.test)
        if overlap["test"]["rows"]:
            warnings.append(f"{overlap['test']['rows']} test rows also appear in the train rows")

    counts = {label: 0 for label in rows.labels}
    for row in rows.train:
        counts[row.label] += 1
    report = {
        "rows": {
            "train": len(rows.train),
            "validation": len(rows.validation),
            "test": len(rows.test) if rows.test is not None else None,
        },
        "labels": rows.labels,
        "train_label_counts": counts,
        "token_lengths": {
            "p50": float(np.percentile(token_lengths, 50)),
            "p95": float(np.percentile(token_lengths, 95)),
            "max": int(token_lengths.max()),
            "max_seq_length": max_length,
            "truncated_share": truncated_share,
        },
        "overlap": overlap,
        "warnings": warnings,
    }
    with ctx.session_factory.begin() as session:
        job = session.get(Job, job_id)
        assert job is not None
        service = JobService(session)
        for warning in warnings:
            service.log(job, f"validation warning: {warning}")
    return StageOutcome(result={"validation": report})
