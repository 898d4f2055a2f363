"""A Triton that (re)started with nothing loaded gets the registry's production versions back, in
dependency order, once: the reconciler against the Triton-protocol stand-in."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from sqlalchemy.orm import Session, sessionmaker

from shared.db.migrate import upgrade
from shared.db.models import BaseModelEntry, Dataset, Job, ModelVersion, RegisteredModel, Team
from shared.db.session import create_db_engine, create_session_factory
from shared.errors import TransientError
from shared.registry.reconcile import reconcile_triton
from shared.serving.triton_control import TritonControl
from shared.serving.triton_repository import publish_classifier
from shared.storage.local import LocalObjectStore
from tests.support.triton_stub import RunningStub, start_triton_stub

LABELS = ["billing", "login", "shipping"]


def _tiny_onnx(path: Path, bias: float) -> Path:
    """logits = (number of real tokens) * [1, 2, 3] + bias: enough for Triton to load and run."""
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["mask", "axes"], ["length"], keepdims=1),
        helper.make_node("MatMul", ["length", "weights"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(LABELS)])],
        initializer=[
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
            helper.make_tensor("weights", TensorProto.FLOAT, [1, len(LABELS)], [1.0, 2.0, 3.0]),
            helper.make_tensor("bias", TensorProto.FLOAT, [len(LABELS)], [bias] * len(LABELS)),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _publish(repository: Path, name: str, version: int, tokenizer_dir: Path, work: Path) -> None:
    onnx_path = _tiny_onnx(work / f"{name}-{version}" / "model.onnx", bias=float(version))
    publish_classifier(repository, name, version, onnx_path, tokenizer_dir, LABELS)


def _register(session: Session, team: Team, name: str, production: int, versions: list[int]) -> None:
    base = BaseModelEntry(name=f"base-{name}", task_family="text-classification", source="local:/x")
    dataset = Dataset(
        team_id=team.id,
        name="d",
        task="text-classification",
        format="jsonl",
        filename="d.jsonl",
        sha256="0" * 64,
        size_bytes=1,
        object_key="k",
        row_count=2,
    )
    session.add_all([base, dataset])
    session.flush()
    model = RegisteredModel(team_id=team.id, name=name, repository_name=name, task="text-classification")
    session.add(model)
    session.flush()
    for version in versions:
        job = Job(team_id=team.id, base_model_id=base.id, train_dataset_id=dataset.id, spec={})
        session.add(job)
        session.flush()
        session.add(ModelVersion(model_id=model.id, version=version, job_id=job.id, formats=["onnx"]))
    model.production_version = production


@pytest.fixture
def registry(tmp_path: Path, tiny_base_model: Path) -> tuple[sessionmaker[Session], Path]:
    """Two published models: `tickets` (production v2 of 1, 2) and `spam` (production v1)."""
    url = f"sqlite:///{tmp_path / 'temper.db'}"
    upgrade(url)
    session_factory = create_session_factory(create_db_engine(url))
    repository = tmp_path / "model_repository"
    for name, version in (("tickets", 1), ("tickets", 2), ("spam", 1)):
        _publish(repository, name, version, tiny_base_model, tmp_path / "work")
    with session_factory.begin() as session:
        team = Team(name=f"team-{uuid.uuid4().hex[:6]}")
        session.add(team)
        session.flush()
        _register(session, team, "tickets", production=2, versions=[1, 2])
        _register(session, team, "spam", production=1, versions=[1])
    return session_factory, repository


def _reconcile(stub: RunningStub, session_factory: sessionmaker[Session], repository: Path):  # type: ignore[no-untyped-def]
    control = TritonControl(stub.url, timeout_s=10)
    try:
        return reconcile_triton(session_factory, control, LocalObjectStore(repository))
    finally:
        control.close()


def _predict(stub: RunningStub, name: str) -> np.ndarray:
    return stub.servicer._infer(name, "", {"TEXT": np.array([[b"my invoice"]], dtype=np.object_)})["logits"]


def test_a_fresh_triton_gets_the_production_versions_back_once(
    registry: tuple[sessionmaker[Session], Path], triton_server
) -> None:  # type: ignore[no-untyped-def]
    session_factory, repository = registry
    stub = triton_server(repository)
    assert stub.servicer.models == {}

    report = _reconcile(stub, session_factory, repository)

    assert report.production_sets == 2
    assert [(reload.repository_name, reload.version, reload.error) for reload in report.reloads] == [
        ("spam", 1, None),
        ("tickets", 2, None),
    ]
    # Composing models before the ensemble that routes to them, each pinned to the production version.
    assert stub.servicer.control_calls == [
        ("load", "spam_tokenizer"), ("load", "spam_onnx"), ("load", "spam"),
        ("load", "tickets_tokenizer"), ("load", "tickets_onnx"), ("load", "tickets"),
    ]  # fmt: skip
    assert {name: set(model.versions) for name, model in stub.servicer.models.items()} == {
        "spam_tokenizer": {1}, "spam_onnx": {1}, "spam": {1},
        "tickets_tokenizer": {2}, "tickets_onnx": {2}, "tickets": {2},
    }  # fmt: skip
    # The ensemble answers raw text with version 2's model (its bias is 2).
    tokens = 2 + 2  # [CLS] my invoice [SEP]
    assert _predict(stub, "tickets").tolist() == [[tokens + 2.0, 2 * tokens + 2.0, 3 * tokens + 2.0]]

    again = _reconcile(stub, session_factory, repository)

    assert again.reloads == [] and len(stub.servicer.control_calls) == 6


def test_a_drifted_version_is_pinned_back_and_a_broken_set_does_not_stop_the_others(
    registry: tuple[sessionmaker[Session], Path], triton_server
) -> None:  # type: ignore[no-untyped-def]
    session_factory, repository = registry
    stub = triton_server(repository)
    _reconcile(stub, session_factory, repository)
    # The registry moves tickets back to v1 while Triton still serves v2 (a rollback whose load did
    # not reach Triton), and spam's ONNX model lost its files.
    with session_factory.begin() as session:
        tickets = session.query(RegisteredModel).filter_by(name="tickets").one()
        tickets.production_version = 1
    (repository / "spam_onnx" / "config.pbtxt").unlink()
    stub.servicer.models.pop("spam_onnx")
    calls_before = len(stub.servicer.control_calls)

    report = _reconcile(stub, session_factory, repository)

    by_name = {reload.repository_name: reload for reload in report.reloads}
    assert by_name["spam"].error is not None and "spam_onnx" in by_name["spam"].error
    assert by_name["tickets"].error is None
    assert by_name["tickets"].loaded == ["tickets_tokenizer", "tickets_onnx", "tickets"]
    assert stub.servicer.control_calls[calls_before:] == [
        ("load", "tickets_tokenizer"), ("load", "tickets_onnx"), ("load", "tickets"),
    ]  # fmt: skip
    assert set(stub.servicer.models["tickets"].versions) == {1}


def test_an_unreachable_triton_is_a_transient_error(registry: tuple[sessionmaker[Session], Path]) -> None:
    session_factory, repository = registry
    stub = start_triton_stub(repository)
    stub.server.stop(grace=None).wait()

    with pytest.raises(TransientError):
        _reconcile(stub, session_factory, repository)
