"""Fitting a job to a worker's memory: the batch arithmetic of "auto", and submit's refusal of a
SmolLM2-shaped LoRA job (384 tokens, batch 16) that no registered train worker can hold."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from shared.db.base import Base, utcnow
from shared.db.models import BaseModelEntry, Dataset, Team
from shared.db.session import create_db_engine, create_session_factory, session_scope
from shared.errors import InvalidInput
from shared.jobs.memory_fit import (
    MemoryPolicy,
    batch_candidates,
    choose_batch,
    estimate_for,
    model_shape,
)
from shared.jobs.service import JobService
from shared.jobs.spec import JobSpec
from shared.workers.capacity import forget_cached
from shared.workers.host import Device, HostResources, MemoryFigures
from shared.workers.registration import WorkerIdentity, advertise
from tests.support.job_rows import RecordingEffects

GIB = 1024**3
POLICY = MemoryPolicy(margin=0.2, stale_after=timedelta(minutes=2), cache_for=timedelta(0))
# SmolLM2-135M's config.json (HuggingFaceTB/SmolLM2-135M), without its weights.
SMOLLM2_CONFIG = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "vocab_size": 49152,
    "max_position_embeddings": 8192,
    "tie_word_embeddings": True,
}


@pytest.fixture
def smollm2_shaped(tmp_path: Path) -> Path:
    directory = tmp_path / "smollm2-config"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(SMOLLM2_CONFIG))
    return directory


def _spec(**hyperparameters: object) -> JobSpec:
    return JobSpec.model_validate(
        {
            "task": "causal-lm",
            "method": "lora",
            "base_model": "smollm2",
            "train_dataset_id": str(uuid.uuid4()),
            "hyperparameters": {"max_seq_length": 384, **hyperparameters},
        }
    )


def test_auto_candidates_are_powers_of_two_dividing_the_global_batch() -> None:
    assert batch_candidates(16) == [16, 8, 4, 2, 1]
    assert batch_candidates(24) == [8, 4, 2, 1]
    assert batch_candidates(1) == [1]


def test_auto_picks_the_largest_batch_that_fits_and_accumulates_to_the_global_batch(
    smollm2_shaped: Path,
) -> None:
    shape = model_shape(f"local:{smollm2_shaped}")
    assert shape is not None
    spec = _spec(batch_size="auto", global_batch_size=16)
    at = {
        b: POLICY.needed_bytes(estimate_for(shape, spec, spec.hyperparameters.with_batch(b, 16 // b), "cpu"))
        for b in (1, 2, 4, 8, 16)
    }
    assert at[1] < at[2] < at[4] < at[8] < at[16]

    # Memory for batch 4 and a little, not for 8.
    choice = choose_batch(shape, spec, "cpu", at[4] + 1, POLICY)
    assert choice is not None
    assert (choice.per_device, choice.accumulation) == (4, 4)
    assert choice.per_device * choice.accumulation == 16 and choice.needed_bytes <= at[4] + 1
    assert choose_batch(shape, spec, "cpu", at[16], POLICY) is not None
    assert choose_batch(shape, spec, "cpu", at[16], POLICY).per_device == 16  # type: ignore[union-attr]
    # Not even batch 1 fits: nothing to choose (the train stage fails out_of_memory at once).
    assert choose_batch(shape, spec, "cpu", at[1] - 1, POLICY) is None


def _database(tmp_path: Path, model_dir: Path) -> tuple[sessionmaker[Session], uuid.UUID, uuid.UUID]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'temper.db'}")
    Base.metadata.create_all(engine)
    factory = create_session_factory(engine, RecordingEffects())
    with session_scope(factory) as session:
        team = Team(name=f"team-{uuid.uuid4().hex[:6]}")
        session.add(team)
        session.add(
            BaseModelEntry(
                name="smollm2", task_family="causal-lm", source=f"local:{model_dir}", model_type="llama"
            )
        )
        session.flush()
        dataset = Dataset(
            team_id=team.id, name="chat", task="instruction", format="jsonl", filename="chat.jsonl",
            sha256="0" * 64, size_bytes=10, object_key="datasets/" + "0" * 64, row_count=100,
            labels=[], column_mapping={}, report={},
        )  # fmt: skip
        session.add(dataset)
        session.flush()
        return factory, team.id, dataset.id


def _register(factory: sessionmaker[Session], memory_bytes: int) -> None:
    with session_scope(factory) as session:
        advertise(
            session,
            WorkerIdentity(name="celery@small", queues=["default", "train"], concurrency=1, hostname="small"),
            HostResources(MemoryFigures(memory_bytes, memory_bytes, "cgroup"), devices=[]),
        )
    forget_cached()


def test_submit_refuses_what_no_worker_holds_and_accepts_auto(tmp_path: Path, smollm2_shaped: Path) -> None:
    factory, team_id, dataset_id = _database(tmp_path, smollm2_shaped)
    shape = model_shape(f"local:{smollm2_shaped}")
    assert shape is not None
    explicit = _spec(batch_size=16).model_copy(update={"train_dataset_id": dataset_id})
    needed_16 = POLICY.needed_bytes(estimate_for(shape, explicit, explicit.hyperparameters, "cpu"))
    forget_cached()

    # No worker has registered yet: nothing is refused (the train stage checks on its worker).
    with session_scope(factory) as session:
        JobService(session).submit(team_id, explicit)

    _register(factory, needed_16 // 2)
    with session_scope(factory) as session, pytest.raises(InvalidInput) as refused:
        JobService(session).submit(team_id, explicit)
    error = refused.value
    assert error.code == "does_not_fit"
    assert f"{needed_16 / 1.2 / GIB:.1f} GiB" in error.message  # the estimate itself
    assert "celery@small" in error.message and f"{needed_16 // 2 / GIB:.1f} GiB" in error.message
    for field in ("batch_size", "max_seq_length", "gradient_checkpointing"):
        assert field in error.message
    assert error.details["fields"] == [
        "hyperparameters.batch_size",
        "hyperparameters.max_seq_length",
        "hyperparameters.gradient_checkpointing",
        "method",
    ]

    auto = _spec(batch_size="auto").model_copy(update={"train_dataset_id": dataset_id})
    with session_scope(factory) as session:
        job = JobService(session).submit(team_id, auto).job
        assert job.spec["hyperparameters"]["batch_size"] == "auto"

    # A worker seen too long ago no longer counts.
    with session_scope(factory) as session:
        from shared.workers.repository import WorkerRepository

        row = WorkerRepository(session).get_by_name("celery@small")
        assert row is not None
        row.seen_at = utcnow() - timedelta(hours=1)
    forget_cached()
    with session_scope(factory) as session:
        JobService(session).submit(team_id, explicit)


def test_a_gpu_worker_is_judged_by_its_device_memory(tmp_path: Path, smollm2_shaped: Path) -> None:
    factory, team_id, dataset_id = _database(tmp_path, smollm2_shaped)
    explicit = _spec(batch_size=16).model_copy(update={"train_dataset_id": dataset_id})
    with session_scope(factory) as session:
        advertise(
            session,
            WorkerIdentity(name="celery@gpu", queues=["train"], concurrency=1, hostname="gpu"),
            HostResources(MemoryFigures(512 * GIB, 512 * GIB, "host"), devices=[Device(0, "T4", GIB)]),
        )
    forget_cached()
    with session_scope(factory) as session, pytest.raises(InvalidInput) as refused:
        JobService(session).submit(team_id, explicit)
    assert "device memory" in refused.value.message


def _register_free(factory: sessionmaker[Session], total_bytes: int, free_bytes: int) -> None:
    with session_scope(factory) as session:
        advertise(
            session,
            WorkerIdentity(name="celery@shared-host", queues=["train"], concurrency=1, hostname="shared"),
            HostResources(MemoryFigures(total_bytes, free_bytes, "host"), devices=[], free_bytes=free_bytes),
        )
    forget_cached()


def test_submit_judges_what_the_worker_has_free_not_the_machine_total(
    tmp_path: Path, smollm2_shaped: Path
) -> None:
    """A 24 GiB machine whose other tenants leave 12 GiB: the SmolLM2 job at batch 8 (13 GiB
    estimated, 15.6 GiB with the margin) would fit its total and is refused; a worker with 20 GiB
    free takes it."""
    factory, team_id, dataset_id = _database(tmp_path, smollm2_shaped)
    explicit = _spec(batch_size=8).model_copy(update={"train_dataset_id": dataset_id})

    _register_free(factory, 24 * GIB, 12 * GIB)
    with session_scope(factory) as session, pytest.raises(InvalidInput) as refused:
        JobService(session).submit(team_id, explicit)
    assert refused.value.code == "does_not_fit"
    assert "has 12.0 GiB of memory" in refused.value.message

    _register_free(factory, 24 * GIB, 20 * GIB)
    with session_scope(factory) as session:
        JobService(session).submit(team_id, explicit)


def test_a_stored_base_model_is_judged_by_the_shape_its_catalog_row_keeps(
    tmp_path: Path, smollm2_shaped: Path
) -> None:
    """A model in the object store (a GGUF conversion, say) has no local files at submit: the
    shape read at registration is what submit estimates from."""
    factory, team_id, dataset_id = _database(tmp_path, smollm2_shaped)
    shape = model_shape(f"local:{smollm2_shaped}")
    assert shape is not None
    with session_scope(factory) as session:
        session.add(
            BaseModelEntry(
                name="smollm2-stored",
                task_family="causal-lm",
                source="store:base-models/smollm2-stored",
                model_type="llama",
                shape={"architecture": asdict(shape.architecture), "parameters": asdict(shape.parameters)},
            )
        )
    explicit = _spec(batch_size=16).model_copy(
        update={"train_dataset_id": dataset_id, "base_model": "smollm2-stored"}
    )
    _register_free(factory, 24 * GIB, int(18.6 * GIB))
    with session_scope(factory) as session, pytest.raises(InvalidInput) as refused:
        JobService(session).submit(team_id, explicit)
    assert refused.value.code == "does_not_fit"
