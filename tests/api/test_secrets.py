"""No secret in a log line or an answer: the API runs as its own process (its real logging set-up,
uvicorn's access log included) with settings holding known secrets; requests that succeed, fail
and are refused are sent, and its log and every answer are searched for the secrets. The only
answers that may hold one are the two that exist to hand it over once (a new key, a new webhook)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import structlog

from shared.db.migrate import upgrade
from shared.observability import configure_logging
from shared.redaction import MASK, Redactor, redact_url
from shared.settings import Settings
from tests.support.live_api import free_port
from tests.support.stack import ADMIN_KEY, REPO_ROOT, settings_env

PEPPER = "pepper-known-secret-7f3a9"
DB_PASSWORD = "dbpass-known-secret-51c2"
S3_SECRET = "s3-known-secret-e8d4b"


@pytest.fixture
def secret_settings(embedded_settings: Settings, postgres_url: str) -> Settings:
    # Postgres here trusts loopback, so the password is sent and ignored: it is still a secret
    # that the settings hold and that must not come out.
    with_password = postgres_url.replace("postgresql://postgres@", f"postgresql://postgres:{DB_PASSWORD}@")
    return embedded_settings.model_copy(
        update={
            "api_key_pepper": PEPPER,
            "database_url": with_password,
            "object_store_secret_key": S3_SECRET,
            "object_store_access_key": "access-known-2b",
            "log_level": "DEBUG",
        }
    )


def test_no_secret_in_logs_or_answers(secret_settings: Settings, tmp_path: Path) -> None:
    upgrade(secret_settings.resolved_database_url)
    port = free_port()
    log_path = tmp_path / "api.log"
    env = {**os.environ, **settings_env(secret_settings), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "uvicorn", "services.api.main:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        answers, handed_over = _exercise(f"http://127.0.0.1:{port}", server)
    finally:
        server.terminate()
        server.wait(timeout=15)
    log_text = log_path.read_text()

    team_key = handed_over["team_key"]
    secrets = {
        "pepper": PEPPER,
        "database password": DB_PASSWORD,
        "object store secret": S3_SECRET,
        "bootstrap admin key": ADMIN_KEY.split("_")[2],
        "team key": team_key.split("_")[2],
        "rotated key": handed_over["rotated_key"].split("_")[2],
        "webhook secret": handed_over["webhook_secret"],
    }
    assert "GET /v1/jobs" in log_text and "unknown or revoked" not in answers[0]  # the log is the real one
    for name, secret in secrets.items():
        assert secret not in log_text, f"the {name} is in the API's log"
        for answer in answers:
            assert secret not in answer, f"the {name} is in an answer: {answer[:300]}"
    # The key sent in a query string was logged (uvicorn's access log), masked.
    assert f"api_key={MASK}" in log_text


def _exercise(url: str, server: subprocess.Popen[bytes]) -> tuple[list[str], dict[str, str]]:
    """Requests of every kind; returns every answer's text but the hand-over ones, and the secrets handed over."""
    answers: list[str] = []
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=url, timeout=30) as client:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the API did not start"
            time.sleep(0.2)

        def keep(response: httpx.Response) -> httpx.Response:
            answers.append(f"{response.status_code} {dict(response.headers)} {response.text}")
            return response

        team = keep(client.post("/v1/teams", json={"name": "research"}, headers=admin)).json()
        issued = client.post(f"/v1/teams/{team['id']}/keys", json={"name": "ci"}, headers=admin).json()
        team_key = issued["key"]
        headers = {"Authorization": f"Bearer {team_key}"}
        webhook = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/h"}, headers=headers).json()
        keep(client.get(f"/v1/webhooks/{webhook['id']}", headers=headers))
        keep(client.get("/v1/webhooks", headers=headers))
        keep(client.get(f"/v1/teams/{team['id']}/keys", headers=admin))
        keep(client.get("/v1/teams", headers=admin))
        keep(client.get("/v1/audit", headers=admin))
        keep(client.get("/readyz"))
        keep(client.get("/metrics"))
        keep(client.get("/openapi.json"))
        # A key sent where it does not belong: in the query string (uvicorn logs the path) and a
        # right prefix with a wrong secret.
        keep(client.get("/v1/jobs", params={"api_key": team_key, "password": DB_PASSWORD}, headers=headers))
        keep(client.get("/v1/jobs", headers={"Authorization": f"Bearer {team_key[:-4]}abcd"}))
        keep(client.get("/v1/jobs", headers={"Authorization": f"Bearer {PEPPER}"}))
        keep(
            client.post("/v1/jobs", json={"base_model": PEPPER, "train_dataset_id": "nope"}, headers=headers)
        )
        keep(client.get(f"/v1/jobs/{team['id']}", headers=headers))
        keep(client.post("/v1/teams", json={"name": S3_SECRET + "!"}, headers=admin))
        rotated = client.post(f"/v1/keys/{issued['id']}/rotate", json={}, headers=admin).json()
        keep(client.get("/v1/jobs", headers=headers))  # the rotated-out key: 401
        keep(client.get(f"/v1/teams/{team['id']}/keys", headers=admin))
    return answers, {"team_key": team_key, "rotated_key": rotated["key"], "webhook_secret": webhook["secret"]}


def test_the_redactor_masks_known_values_and_secret_shapes() -> None:
    redactor = Redactor(["hunter2-long", "x"])  # a value too short to be a secret is ignored
    line = (
        "connect postgresql://temper:p%40ss@db:5432/temper failed; key tmp_ab12cd_Zk3-9fQ_long-secret; "
        "password=hunter2-long token: 'abc def' pepper=xyz redis://:brokerpass@redis:6379/0 x"
    )
    masked = redactor.text(line)
    for secret in ("p%40ss", "Zk3-9fQ_long-secret", "hunter2-long", "abc def", "xyz", "brokerpass"):
        assert secret not in masked, secret
    assert "tmp_ab12cd_***" in masked and "postgresql://temper:***@db:5432/temper" in masked
    assert masked.endswith(" x")
    assert redactor.value({"a": ["password=1234567"], "b": 3}) == {"a": ["password=***"], "b": 3}
    assert redact_url("https://u:p@h.test/x") == "https://u:***@h.test/x"
    assert redact_url("https://h.test/x?y=1") == "https://h.test/x?y=1"


def test_structlog_lines_and_tracebacks_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json_output=True, secrets=[PEPPER])
    log = structlog.get_logger("tests.secrets")  # a new logger, so that it binds to this stderr
    try:
        raise RuntimeError(f"could not use {PEPPER} with tmp_abc123_{'s' * 20}")
    except RuntimeError:
        log.exception("failed", url=f"redis://:{DB_PASSWORD}@redis:6379/0", detail={"password": "x"})
    written = capsys.readouterr().err
    assert "failed" in written and "RuntimeError" in written
    assert '"detail": {"password": "***"}' in written
    for secret in (PEPPER, DB_PASSWORD, "s" * 20):
        assert secret not in written
