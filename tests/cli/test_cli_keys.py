"""`temper admin keys` and `temper admin audit` on the real API: scoped keys, rotation that prints
the new key once and retires the old one, revocation, and the audit trail of all of it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from typer.testing import CliRunner

from services.cli.main import app
from tests.support.live_api import LiveApi

runner = CliRunner()


@pytest.fixture
def cli_env(live_api: LiveApi) -> dict[str, str]:
    return {"TEMPER_API_URL": live_api.url, "TEMPER_API_KEY": live_api.admin_key, "COLUMNS": "200"}


def run(env: dict[str, str], *args: str, key: str | None = None) -> Any:
    return runner.invoke(app, list(args), env={**env, **({"TEMPER_API_KEY": key} if key else {})})


def run_json(env: dict[str, str], *args: str, key: str | None = None) -> Any:
    result = run(env, *args, "--json", key=key)
    assert result.exit_code == 0, (args, result.output)
    return json.loads(result.stdout)


def test_scoped_keys_rotate_and_revoke_from_the_cli(cli_env: dict[str, str]) -> None:
    team = run_json(cli_env, "admin", "create-team", "research")
    reader = run_json(cli_env, "admin", "keys", "create", team["id"], "--name", "dash", "--scope", "read")
    assert reader["scopes"] == ["read"]
    writer = run_json(cli_env, "admin", "keys", "create", team["id"], "--name", "ci")
    assert writer["scopes"] == ["read", "write"]

    refused = run(cli_env, "webhooks", "create", "http://127.0.0.1:9/h", key=reader["key"])
    assert refused.exit_code == 1 and "'write' scope" in refused.stderr

    # Rotation prints the new key once; the old one is refused from then on.
    rotated = run(cli_env, "admin", "keys", "rotate", writer["id"])
    assert rotated.exit_code == 0, rotated.output
    new_key = re.search(r"new key \(shown once, store it now\): (tmp_\S+)", rotated.stdout)
    assert new_key is not None and "stops working now" in rotated.stdout
    assert run(cli_env, "jobs", "list", key=new_key.group(1)).exit_code == 0
    old = run(cli_env, "jobs", "list", key=writer["key"])
    assert old.exit_code == 1 and "not_authenticated" in old.stderr

    # With a grace period the old key keeps working until it ends.
    graced = run_json(cli_env, "admin", "keys", "rotate", reader["id"], "--grace", "600")
    assert graced["previous"]["id"] == reader["id"] and graced["scopes"] == ["read"]
    assert run(cli_env, "jobs", "list", key=reader["key"]).exit_code == 0

    revoked = run(cli_env, "admin", "keys", "revoke", reader["id"])
    assert revoked.exit_code == 0 and "revoked key" in revoked.stdout
    assert run(cli_env, "jobs", "list", key=reader["key"]).exit_code == 1

    listed = run(cli_env, "admin", "keys", "list", team["id"])
    assert listed.exit_code == 0 and "read,write" in listed.stdout

    audit = run_json(cli_env, "admin", "audit", "--action", "admin.key")
    assert [event["action"] for event in audit] == [
        "admin.key.revoke",
        "admin.key.rotate",
        "admin.key.rotate",
        "admin.key.create",
        "admin.key.create",
    ]
    assert all(new_key.group(1) not in json.dumps(event) for event in audit)
    table = run(cli_env, "admin", "audit", "--limit", "3")
    assert table.exit_code == 0 and "admin.key.revoke" in table.stdout
    assert run(cli_env, "admin", "audit", key=new_key.group(1)).exit_code == 1  # a team key is no admin
