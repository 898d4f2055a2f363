"""The worker's task table and its retry policy, read from a worker process's own Celery app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shared.queue import (
    DISPATCH_TASK,
    REAPER_TASK,
    STAGE_TASKS,
    STUDY_ADVANCE_TASK,
    TASK_QUEUES,
    TRITON_RECONCILE_TASK,
    WEBHOOK_DELIVER_TASK,
)
from tests.support.stack import REPO_ROOT

PROBE = """
import json
from services.worker.app import celery_app
from services.worker import tasks
names = sorted(name for name in celery_app.tasks if not name.startswith("celery."))
print(json.dumps({
    "tasks": {
        name: {
            "queue": celery_app.tasks[name].queue,
            "acks_late": celery_app.tasks[name].acks_late,
            "reject_on_worker_lost": celery_app.tasks[name].reject_on_worker_lost,
        }
        for name in names
    },
    "countdowns": [tasks.retry_countdown(retries) for retries in range(6)],
    "beat": {name: entry["task"] for name, entry in celery_app.conf.beat_schedule.items()},
}))
"""


def worker_table(tmp_path: Path, **env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO_ROOT,
        env={**os.environ, "TEMPER_DATA_DIR": str(tmp_path / "var"), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_stage_study_and_webhook_task_is_registered_on_its_queue_and_safe_to_redeliver(
    tmp_path: Path,
) -> None:
    table = worker_table(tmp_path)["tasks"]
    assert set(table) == {
        *STAGE_TASKS.values(),
        STUDY_ADVANCE_TASK,
        WEBHOOK_DELIVER_TASK,
        TRITON_RECONCILE_TASK,
        REAPER_TASK,
        DISPATCH_TASK,
    }
    for name in (*STAGE_TASKS.values(), STUDY_ADVANCE_TASK, WEBHOOK_DELIVER_TASK):
        assert table[name] == {
            "queue": TASK_QUEUES[name],
            "acks_late": True,
            "reject_on_worker_lost": True,
        }, name
    # A periodic task is idempotent and simply runs again at the next tick.
    assert table[TRITON_RECONCILE_TASK]["queue"] == TASK_QUEUES[TRITON_RECONCILE_TASK]
    assert table[REAPER_TASK]["queue"] == TASK_QUEUES[REAPER_TASK]
    assert table[DISPATCH_TASK]["queue"] == TASK_QUEUES[DISPATCH_TASK]


def test_beat_schedules_the_reaper_and_the_dispatcher(tmp_path: Path) -> None:
    scheduled = set(worker_table(tmp_path)["beat"].values())
    assert {REAPER_TASK, DISPATCH_TASK} <= scheduled


def test_transient_retries_back_off_by_doubling_up_to_the_cap(tmp_path: Path) -> None:
    countdowns = worker_table(
        tmp_path, TEMPER_TRANSIENT_RETRY_BACKOFF="PT3S", TEMPER_TRANSIENT_RETRY_BACKOFF_MAX="PT20S"
    )["countdowns"]
    assert countdowns == [3.0, 6.0, 12.0, 20.0, 20.0, 20.0]
