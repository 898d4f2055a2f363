"""A whole Temper stack for tests: migrated database, API client, and a real Celery worker process.

`Stack` runs the embedded default (SQLite, filesystem broker, local store) or the production
adapters (Postgres, Redis, S3 over the minio client) from one `Settings` object, the same way
`temper up` and the compose file do.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

import shared.db.models  # noqa: F401  (every table on Base.metadata)
from services.api.main import create_app
from services.cli.embedded import worker_process
from shared.db.base import Base
from shared.db.migrate import upgrade
from shared.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "tmp_admintest_" + "a" * 32
TERMINAL = {"succeeded", "failed", "cancelled"}


def settings_env(settings: Settings) -> dict[str, str]:
    """The TEMPER_* environment that reproduces `settings` in another process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        elif isinstance(value, list | dict):
            # pydantic-settings reads a complex setting from the environment as JSON.
            value = json.dumps(_unwrapped(value))
        elif hasattr(value, "total_seconds"):
            value = f"PT{int(value.total_seconds())}S"
        env[f"TEMPER_{name.upper()}"] = str(value)
    return env


def _unwrapped(value: Any) -> Any:
    if hasattr(value, "get_secret_value"):
        return value.get_secret_value()
    if isinstance(value, list):
        return [_unwrapped(item) for item in value]
    if isinstance(value, dict):
        return {key: _unwrapped(item) for key, item in value.items()}
    return value


def migrate(settings: Settings) -> None:
    upgrade(settings.resolved_database_url)


@dataclass
class Stack:
    settings: Settings
    client: TestClient
    worker_log: Path | None = None
    worker: subprocess.Popen[bytes] | None = None

    def headers(self, key: str = ADMIN_KEY) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def new_team(self, name: str | None = None) -> tuple[str, str]:
        """Create a team and a (non-admin) key for it; return (team_id, key)."""
        name = name or f"team-{uuid.uuid4().hex[:8]}"
        team = self.client.post("/v1/teams", json={"name": name}, headers=self.headers())
        assert team.status_code == 201, team.text
        key = self.client.post(
            f"/v1/teams/{team.json()['id']}/keys", json={"name": "ci"}, headers=self.headers()
        )
        assert key.status_code == 201, key.text
        return team.json()["id"], key.json()["key"]

    def new_key(
        self, team_id: str, scopes: list[str], name: str = "scoped", rate_limit_per_minute: int | None = None
    ) -> tuple[str, str]:
        """Issue a key with these scopes for the team; return (key_id, key)."""
        body = {"name": name, "scopes": scopes, "rate_limit_per_minute": rate_limit_per_minute}
        issued = self.client.post(f"/v1/teams/{team_id}/keys", json=body, headers=self.headers())
        assert issued.status_code == 201, issued.text
        return issued.json()["id"], issued.json()["key"]

    def database_state(self) -> dict[str, list[str]]:
        """Every row of every table, as text, sorted: equal before and after means nothing changed."""
        engine = self.client.app.state.engine  # type: ignore[attr-defined]
        state: dict[str, list[str]] = {}
        with engine.connect() as connection:
            for table in Base.metadata.sorted_tables:
                state[table.name] = sorted(repr(tuple(row)) for row in connection.execute(table.select()))
        return state

    def register_base_model(self, name: str, source: str, task_family: str = "text-classification") -> None:
        response = self.client.post(
            "/v1/base-models",
            json={"name": name, "task_family": task_family, "source": source},
            headers=self.headers(),
        )
        assert response.status_code == 201, response.text

    def upload(self, key: str, path: Path, name: str = "data", **form: str) -> Any:
        with path.open("rb") as handle:
            return self.client.post(
                "/v1/datasets",
                files={"file": (path.name, handle)},
                data={"name": name, **form},
                headers=self.headers(key),
            )

    def wait_for_checkpoint(self, key: str, job_id: str, timeout_s: float = 180) -> list[dict]:
        """Poll until the job is training and has uploaded a checkpoint; return the checkpoints."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.client.get(f"/v1/jobs/{job_id}", headers=self.headers(key)).json()
            checkpoints = self.client.get(f"/v1/jobs/{job_id}/checkpoints", headers=self.headers(key)).json()
            if job["status"] == "training" and checkpoints:
                return checkpoints
            assert job["status"] in ("queued", "validating", "training"), job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} never reached training with a checkpoint in {timeout_s}s")

    def wait_for(self, key: str, job_id: str, statuses: set[str] = TERMINAL, timeout_s: float = 300) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.client.get(f"/v1/jobs/{job_id}", headers=self.headers(key)).json()
            if job["status"] in statuses:
                return job
            if self.worker is not None and self.worker.poll() is not None:
                break
            time.sleep(0.3)
        log = self.worker_log.read_text()[-4000:] if self.worker_log and self.worker_log.exists() else ""
        raise AssertionError(
            f"job {job_id} did not reach {statuses} (worker alive: {self.worker is None or self.worker.poll() is None}): {job}\nworker log:\n{log}"
        )


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of a worker process of the stack `settings` describe."""
    return {
        **os.environ,
        **settings_env(settings),
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


@contextmanager
def stack_worker(
    stack: Stack, extra_env: dict[str, str] | None = None, **options: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """A(nother) worker process of the stack, logging to the stack's worker log; it becomes
    `stack.worker`. `options` go to `worker_process` (queues, with_beat)."""
    stack.settings.data_root.mkdir(parents=True, exist_ok=True)
    stack.worker_log = stack.settings.data_root / "worker.log"
    env = {**worker_env(stack.settings), **(extra_env or {})}
    with worker_process(env, stack.worker_log, concurrency=1, log_level="INFO", **options) as process:
        stack.worker = process
        yield process


@contextmanager
def running_stack(settings: Settings, with_worker: bool = True, **worker_options: Any) -> Iterator[Stack]:
    migrate(settings)
    app = create_app(settings)
    with TestClient(app) as client:
        stack = Stack(settings=settings, client=client)
        if not with_worker:
            yield stack
            return
        with stack_worker(stack, **worker_options):
            yield stack
