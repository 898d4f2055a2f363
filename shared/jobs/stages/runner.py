"""Running one stage of a job safely, whatever happened before.

A stage task may run twice (a worker died mid-task and the broker handed it back, or a transient
error gave it back for a retry), may find the job cancelled, or may find its work already done.
`run_stage` sorts that out before and after the stage body, so each body only does its own work
and can assume it owns the job. Every failure is classified once (`shared.failures.classify_failure`):
a transient one goes back to the task for a retry, anything else is recorded on the job with its
code, and a bug is logged with its traceback too.

While the body runs, a thread writes the job's heartbeat every `heartbeat_interval`, so that the
reaper (a celery beat task, `shared.jobs.reaper`) can tell a slow stage from a dead worker. A body
that stops because its worker is shutting down (`WorkerShuttingDown`) hands the job back.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import structlog

from shared.errors import InternalError, TransientError
from shared.failures import classify_failure
from shared.jobs.results import StageResult
from shared.jobs.run import JobRun
from shared.jobs.stages.context import StageContext
from shared.jobs.stages.shutdown import WorkerShuttingDown
from shared.observability import HEARTBEATS, STAGE_DURATION, STAGE_HANDBACKS
from shared.workers.host import process_rss_bytes

log = structlog.get_logger(__name__)

# How often the heartbeat thread samples memory, and by how much the peak must grow to be written
# before the next heartbeat.
MEMORY_SAMPLE_INTERVAL_S = 1.0
PEAK_WRITE_GROWTH = 0.05


@dataclass(frozen=True)
class StageOutcome:
    """What a stage body returns: its typed result, and whether a cancel stopped it."""

    result: StageResult | None = None
    cancelled: bool = False


StageBody = Callable[[JobRun], StageOutcome]


def run_stage(
    ctx: StageContext,
    job_id: uuid.UUID,
    stage: str,
    body: StageBody,
    task_id: str | None = None,
    retries: int = 0,
) -> str | None:
    """Run `body` as `stage` of the job; returns the next stage (its task is sent after the commit).

    `retries`: how many times the task was retried for a transient error (Celery's count); a run
    that came back that way is not a failed attempt. Raises `TransientError` for the caller to
    retry; every other failure ends on the job.
    """
    run = JobRun(ctx, job_id, stage)
    bound = log.bind(job_id=str(job_id), stage=stage)
    if run.start(task_id, retries) == "skip":
        bound.info("job not waiting for this stage; skipping")
        return None
    # The scratch folder is this run's from now on: a run the stage was taken from, finishing late
    # on this machine, leaves it alone (every clean below passes the task id).
    ctx.claim_job_dir(job_id, task_id)

    started = time.monotonic()
    try:
        with _heartbeating(run, ctx.settings.heartbeat_interval):
            outcome = body(run)
    except WorkerShuttingDown as stop:
        STAGE_DURATION.labels(stage=stage, outcome="handed_back").observe(time.monotonic() - started)
        STAGE_HANDBACKS.labels(stage=stage).inc()
        bound.info("stage handed back", reason=stop.message)
        run.hand_back(stop.message, stop.step)
        ctx.clean_job_dir(job_id, task_id)
        return None
    except Exception as exc:
        failure = classify_failure(exc)
        elapsed = time.monotonic() - started
        if isinstance(failure, TransientError):
            STAGE_DURATION.labels(stage=stage, outcome="retry").observe(elapsed)
            if failure is exc:
                raise
            raise failure from exc
        if isinstance(failure, InternalError):
            STAGE_DURATION.labels(stage=stage, outcome="error").observe(elapsed)
            bound.exception("stage crashed", error=failure.message)
        else:
            STAGE_DURATION.labels(stage=stage, outcome="failed").observe(elapsed)
            bound.warning("stage failed", code=failure.code, message=failure.message)
        run.fail(failure.code, failure.message)
        ctx.clean_job_dir(job_id, task_id)
        return None

    STAGE_DURATION.labels(stage=stage, outcome="cancelled" if outcome.cancelled else "ok").observe(
        time.monotonic() - started
    )
    next_stage = run.complete(outcome.result, outcome.cancelled)
    if next_stage is None:
        # The job is over (or moved on without this worker): its scratch space here is not needed,
        # unless a run that took the stage over works in it now.
        ctx.clean_job_dir(job_id, task_id)
    return next_stage


class PeakMemory:
    """The stage process's peak memory, sampled from its own high-water mark (VmHWM, which the kernel
    keeps, so a spike between two samples is not missed). Not its cgroup's usage: that counts page
    cache the kernel reclaims before it kills anything, and on a worker without a limit of its own it
    is every tenant of the host's group. Whether the kernel killed the process is told by the
    cgroup's OOM-kill count (`shared.jobs.memory_watch`), not by this figure.
    `sample` says whether the peak grew enough to be worth writing before the next heartbeat: a
    process about to be killed for memory may not live to see it."""

    def __init__(self) -> None:
        self.peak_bytes = 0
        self._written = 0

    def sample(self) -> bool:
        rss = process_rss_bytes()
        peak = max(self.peak_bytes, rss[1] if rss else 0)
        self.peak_bytes = peak
        if peak > self._written * (1 + PEAK_WRITE_GROWTH):
            self._written = peak
            return True
        return False


@contextmanager
def _heartbeating(run: JobRun, interval: timedelta) -> Iterator[None]:
    """Write the job's heartbeat every `interval` from a thread while the block runs.

    A thread, not the stage's own progress reports: a stage can spend many minutes in one call
    (downloading a model, exporting, one long evaluation batch) and is still alive. A heartbeat that
    cannot be written (the database is briefly away) is logged and tried again next interval; if it
    stays away the stage's own writes fail and the transient-error path takes over.
    """
    stop = threading.Event()
    memory = PeakMemory()

    def beat() -> None:
        next_beat = time.monotonic() + interval.total_seconds()
        while not stop.wait(min(MEMORY_SAMPLE_INTERVAL_S, interval.total_seconds())):
            grown = memory.sample()
            if time.monotonic() < next_beat and not grown:
                continue
            next_beat = time.monotonic() + interval.total_seconds()
            try:
                if not run.heartbeat(memory.peak_bytes or None):
                    log.warning(
                        "stage taken over by another task; this run's end is not recorded",
                        job_id=str(run.job_id),
                    )
                    return
                HEARTBEATS.labels(stage=run.stage).inc()
            except Exception as exc:
                log.warning(
                    "heartbeat not written", job_id=str(run.job_id), error=f"{type(exc).__name__}: {exc}"
                )

    thread = threading.Thread(target=beat, name=f"heartbeat-{run.job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
