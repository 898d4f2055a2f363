"""Every change over the API leaves exactly one audit row: the walk reads the OpenAPI document, performs
each mutating operation (POST, PUT, PATCH, DELETE) for real, and counts the rows it left.

Which operations are changes is decided from the document: every mutating operation is, except a POST
that needs only the `read` scope, which by the API's own rule changes nothing (services/api/deps.py
`require_scope`: "POSTs that change nothing, like predict, need read"). Those are listed below by name
with why, so that a new read-scope POST is a decision someone writes down, not a silent exemption.
Job submits are audited here too (`job.submit`), besides the job's own event rows.

A new mutating operation fails the walk until it has a recipe here, and then fails it until its route
records its audit row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from shared.db.models import AuditEvent, Job
from shared.db.session import session_scope
from shared.registry.service import RegistryService
from tests.support.stack import ADMIN_KEY, Stack
from tests.support.tickets import write_rows

MUTATING = ("post", "put", "patch", "delete")

# Mutating methods that change nothing, so leave no audit row (each needs only the `read` scope).
READ_ONLY_POSTS = {
    "models_predict": "runs the model on the texts sent and stores nothing",
    "models_generate": "generates text from the prompt sent and stores nothing",
}


@dataclass
class Walk:
    stack: Stack
    tmp_path: Path
    team_id: str
    key: str
    made: dict[str, Any] = field(default_factory=dict)

    def call(self, method: str, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
        answer = self.stack.client.request(
            method, path, headers=self.stack.headers(key or self.key), **kwargs
        )
        assert answer.status_code < 300, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer

    def dataset(self) -> str:
        rows = write_rows(self.tmp_path / f"{uuid.uuid4().hex}.jsonl", 30)
        return self.call(
            "POST", "/v1/datasets", files={"file": (rows.name, rows.read_bytes())}, data={"name": "t"}
        ).json()["id"]

    def job(self) -> str:
        body = {"base_model": "tiny-bert", "train_dataset_id": self.dataset()}
        return self.call("POST", "/v1/jobs", json=body).json()["id"]

    def webhook(self) -> str:
        return self.call("POST", "/v1/webhooks", json={"url": "http://127.0.0.1:9/h"}).json()["id"]

    def study(self) -> str:
        test = self.dataset()
        base_spec = {
            "base_model": "tiny-bert",
            "train_dataset_id": self.dataset(),
            "test_dataset_id": test,
            "evaluation": {"robustness": False, "bootstrap_resamples": 200},
        }
        body = {
            "name": "lr",
            "base_spec": base_spec,
            "variants": {"mode": "list", "overrides": [{"hyperparameters.learning_rate": 1e-4}]},
            "metric": "f1_macro",
        }
        return self.call("POST", "/v1/studies", json=body).json()["id"]

    def model_with_versions(self, promoted: list[int]) -> str:
        """A registered model with two versions, recorded as the publish stage does (no worker here)."""
        name = f"m{uuid.uuid4().hex[:8]}"
        jobs = [uuid.UUID(self.job()) for _ in range(2)]
        with session_scope(self.stack.client.app.state.session_factory) as session:  # type: ignore[attr-defined]
            owner = session.get(Job, jobs[0])
            assert owner is not None
            registry = RegistryService(session)
            model = registry.ensure_model(owner.team_id, "walk", name, "text-classification")
            for job_id in jobs:
                registry.record_version(model, registry.reserve_version(model, job_id), job_id, ["onnx"], {})
            for version in promoted:
                registry.promote(model, version)
        return name

    def key_id(self, scopes: list[str]) -> str:
        return self.stack.new_key(self.team_id, scopes)[0]


# operation id -> how to perform it: returns (method, path, request keyword arguments, caller's key).
Recipe = Callable[[Walk], tuple[str, str, dict[str, Any], str | None]]
RECIPES: dict[str, Recipe] = {
    "teams_create": lambda w: (
        "POST",
        "/v1/teams",
        {"json": {"name": f"t-{uuid.uuid4().hex[:8]}"}},
        ADMIN_KEY,
    ),
    "keys_create": lambda w: ("POST", f"/v1/teams/{w.team_id}/keys", {"json": {"name": "k"}}, ADMIN_KEY),
    "keys_revoke": lambda w: ("POST", f"/v1/keys/{w.key_id(['read'])}/revoke", {}, ADMIN_KEY),
    "keys_rotate": lambda w: ("POST", f"/v1/keys/{w.key_id(['write'])}/rotate", {"json": {}}, ADMIN_KEY),
    "base_models_register": lambda w: (
        "POST",
        "/v1/base-models",
        {
            "json": {
                "name": f"b{uuid.uuid4().hex[:6]}",
                "task_family": "text-classification",
                "source": w.made["base"],
            }
        },
        ADMIN_KEY,
    ),
    "queue_pause": lambda w: ("POST", "/v1/queue/pause", {"json": {"reason": "maintenance"}}, ADMIN_KEY),
    "queue_resume": lambda w: ("POST", "/v1/queue/resume", {}, ADMIN_KEY),
    "quotas_set": lambda w: (
        "PUT",
        f"/v1/teams/{w.team_id}/quota",
        {"json": {"max_concurrent_jobs": 2}},
        ADMIN_KEY,
    ),
    "datasets_upload": lambda w: (
        "POST",
        "/v1/datasets",
        {
            "files": {"file": ("u.jsonl", write_rows(w.tmp_path / "u.jsonl", 30).read_bytes())},
            "data": {"name": "u"},
        },
        None,
    ),
    "datasets_delete": lambda w: ("DELETE", f"/v1/datasets/{w.dataset()}", {}, None),
    "jobs_create": lambda w: (
        "POST",
        "/v1/jobs",
        {"json": {"base_model": "tiny-bert", "train_dataset_id": w.dataset()}},
        None,
    ),
    "jobs_cancel": lambda w: ("POST", f"/v1/jobs/{w.job()}/cancel", {}, None),
    "models_versions_promote": lambda w: (
        "POST",
        f"/v1/models/{w.model_with_versions([])}/versions/1/promote",
        {},
        None,
    ),
    "models_rollback": lambda w: ("POST", f"/v1/models/{w.model_with_versions([1, 2])}/rollback", {}, None),
    "studies_create": lambda w: (
        "POST",
        "/v1/studies",
        {
            "json": {
                "name": "s",
                "base_spec": {
                    "base_model": "tiny-bert",
                    "train_dataset_id": w.dataset(),
                    "test_dataset_id": w.dataset(),
                },
                "variants": {"mode": "list", "overrides": [{"hyperparameters.learning_rate": 1e-4}]},
                "metric": "f1_macro",
            }
        },
        None,
    ),
    "studies_cancel": lambda w: ("POST", f"/v1/studies/{w.study()}/cancel", {}, None),
    "webhooks_create": lambda w: ("POST", "/v1/webhooks", {"json": {"url": "http://127.0.0.1:9/x"}}, None),
    "webhooks_update": lambda w: ("PATCH", f"/v1/webhooks/{w.webhook()}", {"json": {"active": False}}, None),
    "webhooks_delete": lambda w: ("DELETE", f"/v1/webhooks/{w.webhook()}", {}, None),
    "webhooks_test": lambda w: ("POST", f"/v1/webhooks/{w.webhook()}/test", {}, None),
}


def _mutating_operations(document: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    """operation id -> (method, the scopes its security requirement names)."""
    found: dict[str, tuple[str, list[str]]] = {}
    for operations in document["paths"].values():
        for method, operation in operations.items():
            if method in MUTATING:
                scopes = [
                    scope
                    for requirement in operation.get("security", [])
                    for scope in requirement.get("bearerAuth", [])
                ]
                found[operation["operationId"]] = (method, scopes)
    return found


def _audit_rows(stack: Stack) -> list[AuditEvent]:
    with session_scope(stack.client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        return list(session.scalars(sa.select(AuditEvent)))


def test_every_mutating_operation_leaves_one_audit_row(
    api_stack: Stack, tmp_path: Path, tiny_base_model: Path
) -> None:
    operations = _mutating_operations(api_stack.client.app.openapi())  # type: ignore[attr-defined]
    read_only = {op for op, (_, scopes) in operations.items() if scopes == ["read"]}
    assert read_only == set(READ_ONLY_POSTS), "a read-scope mutating operation must be listed (or audited)"
    assert all(operations[op][0] == "post" for op in read_only)
    changes = sorted(set(operations) - read_only)
    missing = sorted(set(changes) - set(RECIPES))
    assert not missing, (
        f"mutating operations with no recipe in this walk (add one; audit the route): {missing}"
    )
    assert not set(RECIPES) - set(changes), "recipes for operations the document no longer has"

    team_id, key = api_stack.new_team("walk")
    walk = Walk(api_stack, tmp_path, team_id, key, made={"base": f"local:{tiny_base_model}"})
    unaudited: list[str] = []
    for operation_id in changes:
        method, path, kwargs, caller = RECIPES[operation_id](walk)  # setup happens here, before counting
        before = {row.id for row in _audit_rows(api_stack)}
        walk.call(method, path, key=caller, **kwargs)
        new = [row for row in _audit_rows(api_stack) if row.id not in before]
        if len(new) != 1:
            unaudited.append(f"{operation_id} ({method} {path}) left {len(new)} audit rows")
            continue
        caller_prefix = (caller or key).split("_")[1]
        assert new[0].key_prefix == caller_prefix, operation_id
    assert not unaudited, "\n".join(unaudited)


def test_the_walk_notices_a_route_that_forgets_its_audit(
    api_stack: Stack, tmp_path: Path, tiny_base_model: Path, monkeypatch: Any
) -> None:
    """The same counting fails on a route whose audit call is taken away (here the webhook test event)."""
    from shared.audit import service as audit_service

    original = audit_service.Auditor.record

    def forgetful(self: Any, action: str, *args: Any, **kwargs: Any) -> Any:
        return None if action == "webhook.test" else original(self, action, *args, **kwargs)

    monkeypatch.setattr(audit_service.Auditor, "record", forgetful)
    team_id, key = api_stack.new_team("walk")
    walk = Walk(api_stack, tmp_path, team_id, key)
    method, path, kwargs, caller = RECIPES["webhooks_test"](walk)
    before = len(_audit_rows(api_stack))
    walk.call(method, path, key=caller, **kwargs)
    assert len(_audit_rows(api_stack)) == before
