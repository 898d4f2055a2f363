"""The embedded default's broker under load from real processes (`shared.embedded_broker`).

The API (uvicorn, its own process), a worker running celery beat, a second worker, and two sending
processes like the CLI all use the one SQLite broker file at once. Probes are a test-only task
(`tests.support.broker_probe_task`) that records each delivery; the checks are Celery's rules:
every message taken, none taken twice unless a worker process died holding it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

from services.cli.embedded import worker_process
from shared.db.models import BaseModelEntry
from shared.queue import create_celery_app
from shared.settings import Settings
from tests.support.broker_probe import PROBE_LOG_ENV, read_deliveries, send_probes
from tests.support.live_api import free_port
from tests.support.stack import ADMIN_KEY, REPO_ROOT, migrate, worker_env

PROBES = 2000
JOBS = 20
PROBE_TASK_MODULE = "tests.support.broker_probe_task"
# Beat sends its periodic tasks (reaper, dispatch, Triton reconcile) every second during the run.
FAST_BEAT = {
    "reaper_interval": timedelta(seconds=1),
    "dispatch_interval": timedelta(seconds=1),
    "triton_reconcile_interval": timedelta(seconds=1),
}


def probe_env(settings: Settings, probe_log: Path) -> dict[str, str]:
    return {**worker_env(settings), PROBE_LOG_ENV: str(probe_log)}


def api_process(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "services.api.main:create_app", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=worker_env(settings), stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the API process stopped while starting"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the API did not answer within {timeout_s} s")


def add_unloadable_base_model(settings: Settings) -> None:
    """A catalog entry whose files do not exist: a job on it fails in validate at once, so each job
    costs the worker one short task (the API's message) and no training."""
    engine = sa.create_engine(settings.resolved_database_url)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(BaseModelEntry).values(
                id=uuid.uuid4(),
                name="missing-model",
                task_family="text-classification",
                source="local:/nonexistent/missing-model",
            )
        )
    engine.dispose()


def submit_jobs(client: httpx.Client, count: int) -> list[str]:
    team = client.post("/v1/teams", json={"name": f"stress-{uuid.uuid4().hex[:6]}"})
    assert team.status_code == 201, team.text
    key = client.post(f"/v1/teams/{team.json()['id']}/keys", json={"name": "stress"})
    assert key.status_code == 201, key.text
    headers = {"Authorization": f"Bearer {key.json()['key']}"}
    rows = "".join(json.dumps({"text": f"row {i}", "label": "ab"[i % 2]}) + "\n" for i in range(20))
    upload = client.post(
        "/v1/datasets", files={"file": ("rows.jsonl", rows.encode())}, data={"name": "rows"}, headers=headers
    )
    assert upload.status_code == 201, upload.text
    spec = {"base_model": "missing-model", "train_dataset_id": upload.json()["id"]}
    job_ids = []
    for _ in range(count):
        response = client.post("/v1/jobs", json=spec, headers=headers)
        assert response.status_code == 201, response.text
        job_ids.append(response.json()["id"])
    client.headers.update(headers)
    return job_ids


def test_api_beat_workers_and_cli_senders_share_the_broker_without_losing_or_doubling_a_message(
    embedded_settings: Settings, tmp_path: Path
) -> None:
    settings = embedded_settings.model_copy(update=FAST_BEAT)
    migrate(settings)
    add_unloadable_base_model(settings)
    probe_log = tmp_path / "probes.log"
    env = probe_env(settings, probe_log)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = api_process(settings, port, tmp_path / "api.log")
    try:
        with (
            worker_process(
                env,
                tmp_path / "worker-beat.log",
                log_level="INFO",
                with_beat=True,
                imports=(PROBE_TASK_MODULE,),
            ) as beat_worker,
            worker_process(
                env, tmp_path / "worker.log", concurrency=1, imports=(PROBE_TASK_MODULE,)
            ) as worker,
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
            ) as client,
        ):
            wait_ready(url, api)
            started = time.monotonic()
            # Two processes send like the CLI would, this one sends too, and the API sends each
            # job's first stage, all at the same time.
            senders = [
                subprocess.Popen(
                    [sys.executable, "-m", "tests.support.broker_probe", str(first), "700"],
                    cwd=REPO_ROOT,
                    env=env,
                    stderr=subprocess.PIPE,
                )
                for first in (0, 700)
            ]
            send_probes(create_celery_app(settings), 1400, PROBES - 1400)
            job_ids = submit_jobs(client, JOBS)
            for sender in senders:
                _, errors = sender.communicate(timeout=120)
                assert sender.returncode == 0, errors.decode()

            deadline = time.monotonic() + 90
            statuses: dict[str, str] = {}
            while time.monotonic() < deadline:
                for process, name in ((api, "API"), (beat_worker, "worker with beat"), (worker, "worker")):
                    assert process.poll() is None, f"the {name} process stopped"
                statuses = {job_id: client.get(f"/v1/jobs/{job_id}").json()["status"] for job_id in job_ids}
                done = len(read_deliveries(probe_log)) >= PROBES
                if done and all(status == "failed" for status in statuses.values()):
                    break
                time.sleep(0.5)
            elapsed = time.monotonic() - started
            # Whatever is left in flight now would show as a duplicate below.
            time.sleep(1.5)
            deliveries = read_deliveries(probe_log)
            beat_log = (tmp_path / "worker-beat.log").read_text()
            for process, name in ((api, "API"), (beat_worker, "worker with beat"), (worker, "worker")):
                assert process.poll() is None, f"the {name} process stopped"
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=30)

    taken = Counter(delivery.sequence for delivery in deliveries)
    assert sorted(taken) == list(range(PROBES)), f"lost: {sorted(set(range(PROBES)) - set(taken))[:20]}"
    assert [sequence for sequence, count in taken.items() if count > 1] == []
    assert not any(delivery.redelivered for delivery in deliveries)
    # Both workers took their share: the two really competed for the messages.
    by_worker = Counter(delivery.pid for delivery in deliveries)
    assert len(by_worker) >= 2, by_worker
    # Every job's first stage, sent by the API process, was taken: each failed in validate.
    assert set(statuses.values()) == {"failed"}, statuses
    # Beat's messages went through the same broker and its worker took them.
    assert beat_log.count("Task jobs.reap[") >= 2 and beat_log.count("Task jobs.dispatch[") >= 2
    assert "Unrecoverable error" not in beat_log + (tmp_path / "worker.log").read_text()
    print(f"{PROBES} probes and {JOBS} jobs through the embedded broker in {elapsed:.1f} s")


def test_a_task_whose_worker_process_dies_is_delivered_again_and_only_then(
    embedded_settings: Settings, tmp_path: Path
) -> None:
    """acks_late + task_reject_on_worker_lost on the embedded broker: the message a killed pool
    process held comes back once, marked redelivered; the others are taken once."""
    probe_log = tmp_path / "probes.log"
    env = probe_env(embedded_settings, probe_log)
    app = create_celery_app(embedded_settings)
    with worker_process(env, tmp_path / "worker.log", concurrency=1, imports=(PROBE_TASK_MODULE,)) as worker:
        send_probes(app, 0, 1, hold_s=60)  # held on its first delivery only
        send_probes(app, 1, 5)
        deadline = time.monotonic() + 60
        while not read_deliveries(probe_log):
            assert time.monotonic() < deadline and worker.poll() is None
            time.sleep(0.1)
        holder = read_deliveries(probe_log)[0]
        os.kill(holder.pid, signal.SIGKILL)
        while len(read_deliveries(probe_log)) < 7:
            assert time.monotonic() < deadline, read_deliveries(probe_log)
            assert worker.poll() is None, "the worker stopped"
            time.sleep(0.1)
        time.sleep(1)
        deliveries = read_deliveries(probe_log)

    taken = Counter(delivery.sequence for delivery in deliveries)
    assert taken == {0: 2, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1}, deliveries
    first, again = [delivery for delivery in deliveries if delivery.sequence == 0]
    assert first.task_id == again.task_id and not first.redelivered and again.redelivered
    assert again.pid != first.pid


def test_messages_left_in_an_old_filesystem_broker_folder_are_moved_in_once_when_a_worker_starts(
    embedded_settings: Settings, tmp_path: Path
) -> None:
    # What a `var/` from before holds: messages kombu's filesystem transport wrote, and one it was
    # still writing when everything stopped.
    old_broker = create_celery_app(embedded_settings.model_copy(update={"broker_url": "filesystem://"}))
    send_probes(old_broker, 0, 3)
    folder = embedded_settings.broker_directory / "queue"
    assert len(list(folder.glob("*.msg"))) == 3
    (folder / "1_half-written.default.msg").write_bytes(b'{"body": "eyJ')
    probe_log = tmp_path / "probes.log"
    env = probe_env(embedded_settings, probe_log)

    with worker_process(env, tmp_path / "worker.log", concurrency=1, imports=(PROBE_TASK_MODULE,)) as worker:
        deadline = time.monotonic() + 60
        while len(read_deliveries(probe_log)) < 3:
            assert time.monotonic() < deadline and worker.poll() is None, read_deliveries(probe_log)
            time.sleep(0.1)
        time.sleep(1)
        deliveries = read_deliveries(probe_log)

    assert sorted(delivery.sequence for delivery in deliveries) == [0, 1, 2]
    assert list(folder.iterdir()) == []
    unreadable = embedded_settings.broker_directory / "unreadable" / "1_half-written.default.msg"
    assert unreadable.read_bytes() == b'{"body": "eyJ'
    log = (tmp_path / "worker.log").read_text()
    assert "moved messages from the old filesystem broker" in log and "broker message unreadable" in log


_BIND_ELSEWHERE = """
import sys
from kombu import Connection, Exchange, Queue
from shared.embedded_broker import register
register()
with Connection(sys.argv[1]) as connection:
    Queue(sys.argv[2], Exchange("temper-test.broadcast", type="fanout"))(connection.default_channel).declare()
"""


def test_a_broadcast_reaches_queues_other_processes_bound(embedded_settings: Settings) -> None:
    """Celery's remote control (the reaper's revoke of a stuck task, shutdown, inspect) is a fanout
    exchange: the sender must find the control queues that each worker process bound, so bindings
    live in the broker file, not in one process's memory."""
    from kombu import Connection, Exchange, Producer, Queue

    from shared.embedded_broker import Transport, register

    register()
    assert "fanout" in Transport.implements.exchange_type  # else Celery starts no remote control
    url = embedded_settings.resolved_broker_url
    embedded_settings.data_root.mkdir(parents=True, exist_ok=True)
    for queue in ("control-a", "control-b"):
        subprocess.run([sys.executable, "-c", _BIND_ELSEWHERE, url, queue], cwd=REPO_ROOT, check=True)

    broadcast = Exchange("temper-test.broadcast", type="fanout")
    with Connection(url) as connection:
        Producer(connection.default_channel).publish(
            {"revoke": "task-1"}, exchange=broadcast, declare=[broadcast]
        )
        received = {}
        for queue in ("control-a", "control-b"):
            message = Queue(queue, broadcast)(connection.default_channel).get(no_ack=True)
            received[queue] = message.payload if message is not None else None
        # Deleting a queue (a worker's control queue at its shutdown) takes its binding along.
        Queue("control-b", broadcast)(connection.default_channel).delete()
        Producer(connection.default_channel).publish(
            {"revoke": "task-2"}, exchange=broadcast, declare=[broadcast]
        )
        again = Queue("control-a", broadcast)(connection.default_channel).get(no_ack=True)
        table = connection.default_channel.get_table("temper-test.broadcast")
    assert received == {"control-a": {"revoke": "task-1"}, "control-b": {"revoke": "task-1"}}
    assert again is not None and again.payload == {"revoke": "task-2"}
    assert [queue for _, _, queue in table] == ["control-a"]
