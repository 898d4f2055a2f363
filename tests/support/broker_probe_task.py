"""The test-only probe task, registered on the worker's app: `-I tests.support.broker_probe_task`.

What it records and how is in `tests.support.broker_probe`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from services.worker.app import celery_app
from tests.support.broker_probe import PROBE_LOG_ENV, PROBE_TASK


@celery_app.task(name=PROBE_TASK, bind=True, ignore_result=True, acks_late=True)
def record(task: object, sequence: int, sent_at: float, hold_s: float = 0.0) -> None:
    started = time.time()
    request = task.request  # type: ignore[attr-defined]
    log = Path(os.environ[PROBE_LOG_ENV])
    # Delivered before: kombu's virtual transports do not pass their `redelivered` mark on to the
    # task, so the log itself says whether this task id was taken already.
    redelivered = log.exists() and f" {request.id} " in log.read_text()
    line = f"{sequence} {request.id} {int(redelivered)} {os.getpid()} {started:.6f} {sent_at:.6f}\n"
    descriptor = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)
    if hold_s and not redelivered:
        time.sleep(hold_s)  # a long task, for its worker process to die under
