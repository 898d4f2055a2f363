"""A test-only task that records each delivery, for counting what a broker lost or gave twice.

A worker loads the task with `-I tests.support.broker_probe_task` (`worker_process(imports=...)`);
nothing in the product imports either module. The task `probe.record` appends one line per delivery to the file named by
`TEMPER_TEST_PROBE_LOG`: its sequence number, the Celery task id, whether that task id was taken
before (a redelivery), the pool process, and the time it started and the time it was sent. One `write` of
a line shorter than PIPE_BUF on a file opened with O_APPEND lands whole, so pool processes can
share the file.

Run as a program it is a sending process: `python -m tests.support.broker_probe FIRST COUNT`
sends probes FIRST..FIRST+COUNT-1 on the configured broker (TEMPER_* settings), as the CLI or the
API would send tasks.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from celery import Celery

from shared.settings import Settings

PROBE_TASK = "probe.record"
PROBE_LOG_ENV = "TEMPER_TEST_PROBE_LOG"


@dataclass(frozen=True)
class Delivery:
    sequence: int
    task_id: str
    redelivered: bool
    pid: int
    started_at: float
    sent_at: float


def read_deliveries(path: Path) -> list[Delivery]:
    if not path.exists():
        return []
    deliveries = []
    for line in path.read_text().splitlines():
        sequence, task_id, redelivered, pid, started, sent = line.split()
        deliveries.append(
            Delivery(int(sequence), task_id, redelivered == "1", int(pid), float(started), float(sent))
        )
    return deliveries


def send_probes(app: Celery, first: int, count: int, hold_s: float = 0.0) -> list[str]:
    """Send probes first..first+count-1 on the default queue; return their task ids."""
    ids = []
    with app.producer_or_acquire() as producer:
        for sequence in range(first, first + count):
            result = app.send_task(
                PROBE_TASK, args=[sequence, time.time(), hold_s], queue="default", producer=producer
            )
            ids.append(str(result.id))
    return ids


def main() -> int:
    from shared.queue import create_celery_app

    first, count = int(sys.argv[1]), int(sys.argv[2])
    app = create_celery_app(Settings())
    send_probes(app, first, count)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def queued_messages(settings: Settings) -> list[dict[str, Any]]:
    """The messages waiting in the embedded broker (sent, not yet taken by a worker)."""
    if not settings.embedded_broker_path.exists():
        return []
    engine = sa.create_engine(f"sqlite:///{settings.embedded_broker_path}")
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("kombu_message"):
                return []
            payloads = connection.execute(sa.text("SELECT payload FROM kombu_message ORDER BY id")).scalars()
            return [json.loads(payload) for payload in payloads]
    finally:
        engine.dispose()


def drop_queued_messages(settings: Settings) -> int:
    """Delete every message waiting in the embedded broker, as if it had never been sent."""
    engine = sa.create_engine(f"sqlite:///{settings.embedded_broker_path}")
    try:
        with engine.begin() as connection:
            return connection.execute(sa.text("DELETE FROM kombu_message")).rowcount
    finally:
        engine.dispose()
