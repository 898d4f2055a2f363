"""The `temper` command line: described everywhere, short and non-zero on expected failures, and
working end to end on the real API (through the SDK) with tables for people and --json for scripts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from services.cli.main import app
from tests.support.live_api import LiveApi, free_port
from tests.support.stack import REPO_ROOT
from tests.support.tickets import write_rows

runner = CliRunner()


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, (*path, name))


def test_every_command_and_option_has_a_description() -> None:
    root = typer.main.get_command(app)
    paths = []
    for path, command in commands(root):
        paths.append(" ".join(path))
        assert (command.help or "").strip(), f"'temper {' '.join(path)}' has no help text"
        for param in command.params:
            if param.name == "help":
                continue
            assert (getattr(param, "help", None) or "").strip(), (
                f"'temper {' '.join(path)}': {param.name} has no help"
            )
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert shown.exit_code == 0, shown.output
        first_words = " ".join(command.help.split()[:4])
        assert first_words in " ".join(shown.stdout.split()), (path, shown.stdout)
    # The groups the users asked for are there.
    for expected in (
        "jobs list",
        "studies list",
        "admin keys revoke",
        "admin keys rotate",
        "admin audit",
        "models versions",
        "generate",
        "datasets upload",
        "webhooks create",
        "webhooks deliveries",
    ):
        assert expected in paths


def test_jobs_list_without_an_api_says_where_it_looked_in_two_lines() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("TEMPER_")}
    result = subprocess.run(
        [sys.executable, "-m", "services.cli.main", "jobs", "list"],
        cwd=REPO_ROOT,
        env={**env, "TEMPER_API_URL": url, "COLUMNS": "40"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, result.stderr
    assert url in lines[0] and "connection refused" in lines[0]
    assert "temper up" in result.stderr and "TEMPER_API_URL" in result.stderr


@pytest.fixture
def cli_env(live_api: LiveApi) -> dict[str, str]:
    return {"TEMPER_API_URL": live_api.url, "TEMPER_API_KEY": live_api.admin_key, "COLUMNS": "200"}


def run(env: dict[str, str], *args: str, key: str | None = None) -> Any:
    result = runner.invoke(app, list(args), env={**env, **({"TEMPER_API_KEY": key} if key else {})})
    return result


def run_json(env: dict[str, str], *args: str, key: str | None = None) -> Any:
    result = run(env, *args, "--json", key=key)
    assert result.exit_code == 0, (args, result.output)
    return json.loads(result.stdout)


def test_the_cli_on_the_real_api(cli_env: dict[str, str], tmp_path: Path, tiny_base_model: Path) -> None:
    assert (
        run(
            cli_env, "admin", "register-base-model", "tiny-bert", "--source", f"local:{tiny_base_model}"
        ).exit_code
        == 0
    )
    team = run_json(cli_env, "admin", "create-team", "research")
    issued = run_json(cli_env, "admin", "keys", "create", team["id"], "--name", "ci")
    key = issued["key"]

    dataset = run_json(
        cli_env, "datasets", "upload", str(write_rows(tmp_path / "t.jsonl", 30)), "--name", "t", key=key
    )
    assert dataset["row_count"] == 30
    listed = run(cli_env, "datasets", "list", key=key)
    assert listed.exit_code == 0 and dataset["id"] in listed.stdout

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"base_model": "tiny-bert", "train_dataset_id": dataset["id"]}))
    job = run_json(cli_env, "jobs", "submit", str(spec), "--name", "first", key=key)
    assert job["status"] == "queued" and job["name"] == "first"
    assert [item["id"] for item in run_json(cli_env, "jobs", "list", key=key)] == [job["id"]]
    table = run(cli_env, "jobs", "list", key=key)
    assert job["id"] in table.stdout and "queued" in table.stdout

    cancelled = run(cli_env, "jobs", "cancel", job["id"], key=key)
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.stdout
    watched = run(cli_env, "jobs", "watch", job["id"], "--json", key=key)
    events = [json.loads(line) for line in watched.stdout.splitlines()]
    assert [event["type"] for event in events] == ["created", "admitted", "transition", "transition"]
    assert [event["to_status"] for event in events] == ["queued", None, "cancelling", "cancelled"]

    assert run_json(cli_env, "studies", "list", key=key) == []
    assert run_json(cli_env, "models", "list", key=key) == []

    quota = run_json(
        cli_env, "queue", "set-quota", team["id"], "--max-concurrent-jobs", "2", "--gpu-hours", "10"
    )
    assert (quota["max_concurrent_jobs"], quota["gpu_hours_per_period"]) == (2, 10)
    paused = run(cli_env, "queue", "pause", "--reason", "maintenance")
    assert paused.exit_code == 0 and "paused (maintenance)" in paused.stdout
    assert run_json(cli_env, "queue", "resume")["paused"] is False
    assert run_json(cli_env, "queue", "quota", team["id"])["max_concurrent_jobs"] == 2

    keys = run_json(cli_env, "admin", "keys", "list", team["id"])
    assert [entry["id"] for entry in keys] == [issued["id"]]
    revoked = run(cli_env, "admin", "keys", "revoke", issued["id"])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    refused = run(cli_env, "jobs", "list", key=key)
    assert refused.exit_code == 1 and "not_authenticated" in refused.stderr


def test_a_dry_run_shows_the_job_as_it_would_run_and_submits_nothing(
    cli_env: dict[str, str], tmp_path: Path, tiny_base_model: Path
) -> None:
    run(cli_env, "admin", "register-base-model", "tiny-bert", "--source", f"local:{tiny_base_model}")
    dataset = run_json(
        cli_env, "datasets", "upload", str(write_rows(tmp_path / "t.jsonl", 40)), "--name", "t"
    )
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"base_model": "tiny-bert", "train_dataset_id": dataset["id"]}))

    shown = run(cli_env, "jobs", "submit", str(spec), "--dry-run")
    assert shown.exit_code == 0, shown.output
    assert "nothing was submitted" in shown.stdout and "first_principles" in shown.stdout
    assert re.search(r"steps\s+9 \(3 an epoch x 3\)", shown.stdout), shown.stdout
    planned = run_json(cli_env, "jobs", "submit", str(spec), "--dry-run")
    assert planned["steps"]["total_steps"] == 9 and planned["spec"]["validation_split"] == 0.1
    assert run_json(cli_env, "jobs", "list") == []
    refused = run(cli_env, "jobs", "submit", str(spec), "--dry-run", "--watch")
    assert refused.exit_code != 0 and "no job to watch" in refused.output


def test_webhooks_from_the_command_line(cli_env: dict[str, str]) -> None:
    created = run(cli_env, "webhooks", "create", "https://hooks.example.com/t", "--event", "job.failed")
    assert created.exit_code == 0, created.output
    secret = re.search(r"signing secret: (whsec_\S+)", created.stdout)
    assert secret and "not shown again" in created.stdout
    [endpoint] = run_json(cli_env, "webhooks", "list")
    assert endpoint["events"] == ["job.failed"] and "secret" not in endpoint

    queued = run_json(cli_env, "webhooks", "test", endpoint["id"])
    assert queued["event_type"] == "webhook.test" and queued["status"] == "pending"
    table = run(cli_env, "webhooks", "deliveries", endpoint["id"])
    assert table.exit_code == 0 and "webhook.test" in table.stdout
    paused = run_json(cli_env, "webhooks", "update", endpoint["id"], "--inactive")
    assert paused["active"] is False
    assert secret.group(1) not in run(cli_env, "webhooks", "get", endpoint["id"]).stdout
    assert run(cli_env, "webhooks", "delete", endpoint["id"]).exit_code == 0
    assert run_json(cli_env, "webhooks", "list") == []
    refused = run(cli_env, "webhooks", "create", "ftp://hooks.example.com")
    assert refused.exit_code == 1 and "http:// or https://" in refused.stderr


def test_a_refusal_prints_the_message_and_its_details(cli_env: dict[str, str], tmp_path: Path) -> None:
    missing = run(cli_env, "jobs", "get", str(uuid.uuid4()))
    assert missing.exit_code == 1 and missing.stdout == ""
    assert len(missing.stderr.strip().splitlines()) == 1
    assert re.search(r"^error: job .* not found \(not_found, HTTP 404\)$", missing.stderr.strip())
    # A single field error is its own message: said once, not repeated as details.
    malformed = run(cli_env, "jobs", "get", "not-a-uuid")
    assert malformed.exit_code == 1 and len(malformed.stderr.strip().splitlines()) == 1
    assert "job_id: Input should be a valid UUID" in malformed.stderr

    rows = (
        [{"text": "fine", "label": "a"}, {"text": "", "label": "b"}]
        + [{"text": f"row {i}", "label": "ab"[i % 2]} for i in range(5)]
        + [{"text": None, "label": "a"}] * 5
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    refused = run(cli_env, "datasets", "upload", str(bad), "--name", "bad")
    lines = refused.stderr.strip().splitlines()
    assert refused.exit_code == 1 and len(lines) == 2, refused.stderr
    assert "(invalid_input, HTTP 422)" in lines[0]
    assert lines[1].strip().startswith("row 2: ") and "and 3 more (--json for all)" in lines[1]

    as_json = run(cli_env, "datasets", "upload", str(bad), "--name", "bad", "--json")
    assert as_json.exit_code == 1 and as_json.stdout == ""
    error = json.loads(as_json.stderr)["error"]
    assert error["code"] == "invalid_input" and len(error["details"]["errors"]) == 6
