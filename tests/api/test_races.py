"""Two API processes racing on the same job transition: exactly one wins, the other gets a 409, and
the job's history holds the transition once.

Real processes (uvicorn, as replicas run) on one Postgres database; each job's two cancels are
released together by a barrier, one to each process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from shared.db.migrate import upgrade
from shared.settings import Settings
from tests.support.live_api import free_port
from tests.support.stack import ADMIN_KEY, REPO_ROOT, settings_env
from tests.support.tickets import write_rows

pytestmark = [pytest.mark.services, pytest.mark.timeout(180)]

JOBS = 12


@contextmanager
def api_processes(settings: Settings, count: int, log_dir: Path) -> Iterator[list[str]]:
    env = {**os.environ, **settings_env(settings)}
    servers, urls = [], []
    try:
        for index in range(count):
            port = free_port()
            command = [sys.executable, "-m", "uvicorn", "services.api.main:create_app", "--factory"]
            command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
            with (log_dir / f"api-{index}.log").open("wb") as log:
                servers.append(subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=log))
            urls.append(f"http://127.0.0.1:{port}")
        # Started together, as replicas are: they race to install the bootstrap admin key too.
        for url, server, index in zip(urls, servers, range(count), strict=True):
            _wait_ready(url, server, log_dir / f"api-{index}.log")
        yield urls
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=15)


def race(client: httpx.Client, urls: list[str]) -> list[int]:
    """POST to every url at once (released together by a barrier); the status codes."""
    barrier = threading.Barrier(len(urls))
    answers: list[int] = []

    def post(url: str) -> None:
        barrier.wait()
        answers.append(client.post(url).status_code)

    racers = [threading.Thread(target=post, args=(url,)) for url in urls]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=30)
    return answers


def _wait_ready(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the API at {url} exited at start-up:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API at {url} did not start")


def test_racing_cancels_from_two_api_processes_one_wins_the_other_gets_409(
    embedded_settings: Settings, postgres_url: str, tiny_base_model: Path, tmp_path: Path
) -> None:
    settings = embedded_settings.model_copy(update={"database_url": postgres_url, "rate_limit_per_minute": 0})
    upgrade(postgres_url)
    with api_processes(settings, 2, tmp_path) as (first, second):
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        registered = httpx.post(
            f"{first}/v1/base-models",
            json={
                "name": "tiny-bert",
                "task_family": "text-classification",
                "source": f"local:{tiny_base_model}",
            },
            headers=admin,
            timeout=60,
        )
        assert registered.status_code == 201, registered.text
        team = httpx.post(f"{first}/v1/teams", json={"name": "racers"}, headers=admin).json()
        key = httpx.post(f"{first}/v1/teams/{team['id']}/keys", json={"name": "ci"}, headers=admin).json()[
            "key"
        ]
        headers = {"Authorization": f"Bearer {key}"}
        rows = write_rows(tmp_path / "train.jsonl", 30)
        with rows.open("rb") as handle:
            train = httpx.post(
                f"{first}/v1/datasets",
                files={"file": (rows.name, handle)},
                data={"name": "t"},
                headers=headers,
            ).json()
        spec = {"base_model": "tiny-bert", "train_dataset_id": train["id"]}
        jobs = [httpx.post(f"{first}/v1/jobs", json=spec, headers=headers).json()["id"] for _ in range(JOBS)]

        with httpx.Client(headers=headers, timeout=30) as client:
            for job_id in jobs:
                answers = race(client, [f"{url}/v1/jobs/{job_id}/cancel" for url in (first, second)])
                assert sorted(answers) == [202, 409], (job_id, answers)

                job = client.get(f"{second}/v1/jobs/{job_id}").json()
                assert job["status"] == "cancelled"
                events = client.get(f"{second}/v1/jobs/{job_id}/events").json()["items"]
                cancelled = [event for event in events if event["to_status"] == "cancelled"]
                assert len(cancelled) == 1, events
