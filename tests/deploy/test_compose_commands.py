"""The exact commands of docker-compose.yml, run as processes, take a job from upload to `succeeded`.

No Docker engine runs here, so the test does what the containers would: it reads each service's
`command`, `environment` and `healthcheck` out of docker-compose.yml (interpolated with an admin's
.env, as compose does) and starts them as subprocesses. Only environment is substituted: the service
addresses point at the local Postgres, Redis and S3 test server, the data directory is a temporary
one, listeners bind 127.0.0.1 on free ports, and Triton is the Triton-protocol stand-in serving the
model repository directory. The database user and password carry `%@:/`, so the URL built from
parts and alembic's config parser are exercised through the real services.

Then Triton "restarts" (a fresh stand-in with nothing loaded, on the same address) and the beat's
reconcile loads the production version again, counted in the worker's Prometheus metrics.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from scripts.check_deploy import load_compose
from tests.conftest import POSTGRES_ADMIN_URL, REDIS_URL
from tests.e2e.test_job_lifecycle import write_rows
from tests.support.s3_server import S3_ACCESS_KEY, S3_SECRET_KEY
from tests.support.stack import ADMIN_KEY, REPO_ROOT
from tests.support.triton_stub import start_triton_stub

pytestmark = pytest.mark.services

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ONE_SHOT = ["buckets", "migrate"]
LONG_RUNNING = ["api", "worker-cpu", "worker-gpu", "beat"]
# The characters that break a URL pasted together, and alembic's `%` interpolation.
DATABASE_USER = "temper%@:/user"
DATABASE_PASSWORD = "p%40ss%@:/w0rd"
VENV_BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _admin_env(s3_port: int) -> dict[str, str]:
    """What an admin writes into .env (see .env.example)."""
    return {
        "POSTGRES_PASSWORD": DATABASE_PASSWORD,
        "MINIO_ROOT_USER": S3_ACCESS_KEY,
        "MINIO_ROOT_PASSWORD": S3_SECRET_KEY,
        "TEMPER_API_KEY_PEPPER": "compose-test-pepper-" + uuid.uuid4().hex,
        "TEMPER_WEBHOOK_SECRET_KEYS": f'["compose-test-webhook-key-{uuid.uuid4().hex}"]',
        "TEMPER_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
        "GRAFANA_ADMIN_PASSWORD": "unused-here",
        # Browsers reach the S3 server by another name than the services do.
        "TEMPER_OBJECT_STORE_PUBLIC_URL": f"http://localhost:{s3_port}",
    }


@pytest.fixture
def database_role(postgres_url: str) -> Iterator[str]:
    """The test database, owned by a role whose name and password need URL-encoding."""
    database = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP ROLE IF EXISTS "{DATABASE_USER}"')
        admin.execute(
            f"CREATE ROLE \"{DATABASE_USER}\" LOGIN PASSWORD '{DATABASE_PASSWORD.replace(chr(39), chr(39) * 2)}'"
        )
        admin.execute(f'ALTER DATABASE "{database}" OWNER TO "{DATABASE_USER}"')
    with psycopg.connect(postgres_url, autocommit=True) as owner:
        owner.execute(f'ALTER SCHEMA public OWNER TO "{DATABASE_USER}"')
    yield database
    with psycopg.connect(postgres_url, autocommit=True) as owner:
        owner.execute(f'REASSIGN OWNED BY "{DATABASE_USER}" TO CURRENT_USER')
        owner.execute(f'DROP OWNED BY "{DATABASE_USER}"')
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" OWNER TO CURRENT_USER')
        admin.execute(f'DROP ROLE IF EXISTS "{DATABASE_USER}"')


@dataclass
class Service:
    name: str
    command: list[str]
    env: dict[str, str]
    healthcheck: list[str] | None
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.command, cwd=REPO_ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT
            )

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def healthy(self) -> bool:
        """Run the service's compose healthcheck command as compose would; True when it exits 0."""
        assert self.healthcheck, f"{self.name} has no healthcheck"
        kind, *rest = self.healthcheck
        argv = ["/bin/sh", "-c", rest[0]] if kind == "CMD-SHELL" else rest
        # In a container $HOSTNAME is the container's name, which celery's %h also expands to.
        env = {**self.env, "HOSTNAME": socket.gethostname()}
        result = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, timeout=60)
        return result.returncode == 0


def _service(definition: dict, name: str, overrides: dict[str, str], log_dir: Path) -> Service:
    command = [str(part) for part in definition["command"]]
    # The image's PATH has the virtual environment first; here it is this interpreter's.
    executable = VENV_BIN / command[0]
    if executable.exists():
        command[0] = str(executable)
    compose_env = {key: str(value) for key, value in (definition.get("environment") or {}).items()}
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **compose_env,
        **{key: value for key, value in overrides.items() if key in compose_env or key.startswith("UVICORN")},
    }
    if "PROMETHEUS_MULTIPROC_DIR" in compose_env:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(log_dir / f"prometheus-{name}")
        env["TEMPER_WORKER_METRICS_PORT"] = overrides[f"metrics:{name}"]
        env["TEMPER_WORKER_METRICS_ADDRESS"] = "127.0.0.1"
    env["TEMPER_DATA_DIR"] = str(log_dir / f"data-{name}")
    Path(env["TEMPER_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    health = definition.get("healthcheck", {}).get("test")
    return Service(
        name, command, env, [str(part) for part in health] if health else None, log_dir / f"{name}.log"
    )


def _wait(what: str, condition: Callable[[], bool], timeout_s: float, services: list[Service]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        for service in services:
            if service.process is not None and service.process.poll() is not None:
                raise AssertionError(
                    f"{service.name} exited ({service.process.returncode}):\n{service.tail()}"
                )
        time.sleep(0.5)
    logs = "\n".join(f"--- {service.name}\n{service.tail(1500)}" for service in services)
    raise AssertionError(f"{what} did not happen within {timeout_s:.0f}s\n{logs}")


def test_compose_commands_run_a_job_to_succeeded_and_bring_triton_back(
    tmp_path: Path, database_role: str, redis_prefix: str, s3_server: str, tiny_base_model: Path
) -> None:
    s3_port = int(s3_server.rsplit(":", 1)[1])
    definitions = load_compose([COMPOSE_FILE], _admin_env(s3_port))["services"]
    assert set(ONE_SHOT + LONG_RUNNING) <= set(definitions)

    repository = tmp_path / "model_repository"
    repository.mkdir()
    triton_port = _free_port()
    triton = start_triton_stub(repository, triton_port)
    api_port = _free_port()
    overrides = {
        "TEMPER_DATABASE_HOST": "127.0.0.1",
        "TEMPER_DATABASE_PORT": "5432",
        "TEMPER_DATABASE_USER": DATABASE_USER,
        "TEMPER_DATABASE_NAME": database_role,
        "TEMPER_BROKER_URL": REDIS_URL,
        "TEMPER_OBJECT_STORE_URL": f"s3://{s3_server}/temper-{uuid.uuid4().hex[:10]}",
        "TEMPER_MODEL_REPOSITORY_URL": repository.as_uri(),
        "TEMPER_TRITON_URL": triton.url,
        "UVICORN_HOST": "127.0.0.1",
        "UVICORN_PORT": str(api_port),
        "metrics:worker-cpu": str(_free_port()),
        "metrics:worker-gpu": str(_free_port()),
    }
    services = {
        name: _service(definitions[name], name, overrides, tmp_path) for name in ONE_SHOT + LONG_RUNNING
    }
    for service in services.values():
        # Several test runs share the Redis server: a key prefix keeps this run's queues apart.
        service.env["TEMPER_BROKER_KEY_PREFIX"] = redis_prefix
        # The reconcile runs every 30 s in production; the test waits for one run, not thirty seconds.
        service.env["TEMPER_TRITON_RECONCILE_INTERVAL"] = "PT2S"
    # What compose expects of the environment it passes in: the password only in its own variable.
    assert services["migrate"].env["TEMPER_DATABASE_PASSWORD"] == DATABASE_PASSWORD
    assert "TEMPER_DATABASE_URL" not in services["migrate"].env

    running = [services[name] for name in LONG_RUNNING]
    try:
        for name in ONE_SHOT:  # depends_on: service_completed_successfully
            service = services[name]
            completed = subprocess.run(
                service.command, cwd=REPO_ROOT, env=service.env, capture_output=True, text=True, timeout=120
            )
            assert completed.returncode == 0, f"{name}: {completed.stdout}\n{completed.stderr}"
        for service in running:
            service.start()

        api = f"http://127.0.0.1:{api_port}"

        def api_ready() -> bool:
            try:
                return httpx.get(f"{api}/readyz", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        _wait("the API answering /readyz", api_ready, 90, running)
        for service in running:
            _wait(f"{service.name}'s compose healthcheck passing", service.healthy, 90, running)

        with httpx.Client(base_url=api, timeout=30) as client:
            admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
            registered = client.post(
                "/v1/base-models",
                json={
                    "name": "tiny-bert",
                    "task_family": "text-classification",
                    "source": f"local:{tiny_base_model}",
                },
                headers=admin,
            )
            assert registered.status_code == 201, registered.text
            team = client.post("/v1/teams", json={"name": "compose"}, headers=admin).json()
            key = client.post(f"/v1/teams/{team['id']}/keys", json={"name": "ci"}, headers=admin).json()[
                "key"
            ]
            headers = {"Authorization": f"Bearer {key}"}
            datasets = {}
            for name, rows, offset in (("train", 90, 0), ("test", 30, 1000)):
                path = write_rows(tmp_path / f"{name}.jsonl", rows, offset)
                with path.open("rb") as handle:
                    uploaded = client.post(
                        "/v1/datasets",
                        files={"file": (path.name, handle)},
                        data={"name": name},
                        headers=headers,
                    )
                assert uploaded.status_code == 201, uploaded.text
                datasets[name] = uploaded.json()["id"]
            spec = {
                "base_model": "tiny-bert",
                "train_dataset_id": datasets["train"],
                "test_dataset_id": datasets["test"],
                "hyperparameters": {
                    "epochs": 1,
                    "batch_size": 16,
                    "learning_rate": 5e-3,
                    "max_seq_length": 32,
                },
                "evaluation": {"robustness": False, "bootstrap_resamples": 100},
                "export": {"int8": False},
                "publish": {"model": "tickets", "promote": True},
            }
            submitted = client.post("/v1/jobs", json=spec, headers=headers)
            assert submitted.status_code == 201, submitted.text
            job_id = submitted.json()["id"]

            def job_finished() -> bool:
                return client.get(f"/v1/jobs/{job_id}", headers=headers).json()["status"] in (
                    "succeeded",
                    "failed",
                    "cancelled",
                )

            _wait(f"job {job_id} finishing", job_finished, 240, running)
            job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
            assert job["status"] == "succeeded", job
            assert job["completed_stages"] == ["validate", "train", "evaluate", "export", "publish"]
            publish = job["result"]["publish"]
            assert publish["promoted"] and publish["loaded_on_triton"], publish
            name = publish["repository_name"]
            assert set(triton.servicer.models) == {f"{name}_tokenizer", f"{name}_onnx", name}

            # Download links are signed for the public address and work without credentials.
            artifacts = client.get(f"/v1/jobs/{job_id}/artifacts", headers=headers).json()
            config = next(file for file in artifacts if file["path"] == "model/config.json")
            assert config["download_url"].startswith(f"http://localhost:{s3_port}/"), config
            downloaded = httpx.get(config["download_url"], timeout=10)
            assert downloaded.status_code == 200 and len(downloaded.content) == config["size"]

        # Triton restarts: explicit model control loads nothing; the beat's reconcile loads it back.
        triton.server.stop(grace=None).wait()
        triton = start_triton_stub(repository, triton_port)
        assert triton.servicer.models == {}

        def production_loaded_again() -> bool:
            loaded = triton.servicer.models
            return name in loaded and set(loaded[name].versions) == {publish["version"]}

        _wait("the reconcile loading the production version", production_loaded_again, 60, running)
        assert triton.servicer.control_calls[:3] == [
            ("load", f"{name}_tokenizer"),
            ("load", f"{name}_onnx"),
            ("load", name),
        ]
        # The worker that ran it serves the count of all its pool processes on its metrics port.
        metrics_url = f"http://127.0.0.1:{overrides['metrics:worker-cpu']}/metrics"
        reloads = [
            line
            for line in httpx.get(metrics_url, timeout=5).text.splitlines()
            if line.startswith('temper_triton_reloads_total{outcome="reloaded"}')
        ]
        assert reloads and float(reloads[0].split()[-1]) >= 1, reloads
    finally:
        for service in reversed(running):
            service.stop()
        triton.server.stop(grace=None)
        shutil.rmtree(tmp_path / "prometheus-worker-cpu", ignore_errors=True)
