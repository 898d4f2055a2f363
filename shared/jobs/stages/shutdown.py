"""Warm shutdown of a worker: the running stage stops at a safe point and gives the job back.

When a worker is told to stop (SIGTERM: a deploy, a scale-down, a spot instance reclaimed), Celery
stops taking tasks and waits for the running ones. A training stage can run for hours, longer than
any orchestrator waits, so instead of finishing it the stage finishes its current step, saves a
checkpoint and hands the job back: the runner sends the stage again and another worker resumes
from that checkpoint. That is not a failure and does not count towards any cap.

Tasks run in pool processes forked from the worker's main process, but the shutdown is signalled
to the main process only. So the flag is a `multiprocessing.Event` that the main process creates
before it forks its pool (`prepare`) and sets when it starts shutting down (`request`); the pool
processes inherit it and read it (`requested`). In a process that never called `prepare` (a test
driving a stage directly, a solo pool) a plain in-process flag serves.
"""

from __future__ import annotations

import multiprocessing
import threading
from multiprocessing.synchronize import Event as ProcessEvent

_flag: ProcessEvent | threading.Event = threading.Event()


class WorkerShuttingDown(Exception):
    """Raised by a stage body that stopped early because its worker is shutting down.

    Not a `TemperError`: it records no failure; the runner hands the job back instead.
    """

    def __init__(self, message: str, step: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.step = step


def prepare() -> None:
    """Create the flag that pool processes share; call in the main process before the pool forks."""
    global _flag
    _flag = multiprocessing.get_context("fork").Event()


def request() -> None:
    _flag.set()


def requested() -> bool:
    return _flag.is_set()


def reset() -> None:
    """Clear the flag (tests that drive a stage in this process)."""
    _flag.clear()
