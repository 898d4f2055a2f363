"""Logging (structlog, key-value; JSON in containers) and the Prometheus metrics every process shares."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

import structlog
from prometheus_client import Counter, Gauge, Histogram

from shared.redaction import Redactor

HTTP_REQUESTS = Counter("temper_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
HTTP_LATENCY = Histogram("temper_http_request_seconds", "HTTP request latency", ["method", "route"])
JOB_TRANSITIONS = Counter(
    "temper_job_transitions_total", "Job state transitions", ["from_status", "to_status"]
)
STAGE_DURATION = Histogram(
    "temper_stage_duration_seconds",
    "Wall time of one pipeline stage run",
    ["stage", "outcome"],
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600),
)
QUEUE_WAIT = Histogram(
    "temper_queue_wait_seconds",
    "Time from a stage task being sent to a worker starting it",
    ["stage"],
    buckets=(0.05, 0.25, 1, 5, 30, 120, 600, 3600),
)
STAGE_RETRIES = Counter(
    "temper_stage_retries_total",
    "Stage runs given back for a retry after a transient error",
    ["stage", "code"],
)
STAGE_HANDBACKS = Counter(
    "temper_stage_handbacks_total",
    "Stage runs a shutting-down worker gave back to the queue (not failures)",
    ["stage"],
)
HEARTBEATS = Counter("temper_heartbeats_total", "Job heartbeats written by workers", ["stage"])
REAPER_ACTIONS = Counter(
    "temper_reaper_actions_total",
    "What the reaper (a celery beat task) did to left-behind jobs: requeue, fail, cancel",
    ["action"],
)
# Gauges of the latest report of a running training; "livemax" so that in a worker's multiprocess
# mode a finished pool process drops out and the busiest live one shows. Every metric here has a
# label: in multiprocess mode a metric without one opens its file at import, before the worker has
# prepared PROMETHEUS_MULTIPROC_DIR.
TRAIN_SAMPLES_PER_SECOND = Gauge(
    "temper_train_samples_per_second",
    "Training throughput at the latest progress report",
    ["stage"],
    multiprocess_mode="livemax",
)
TRAIN_TOKENS_PER_SECOND = Gauge(
    "temper_train_tokens_per_second",
    "Training tokens per second at the latest progress report (where the trainer counts them)",
    ["stage"],
    multiprocess_mode="livemax",
)
OBJECT_STORE_ERRORS = Counter(
    "temper_object_store_errors_total",
    "Object store calls that failed: unavailable (retried as transient) or refused",
    ["kind"],
)
EFFECT_FAILURES = Counter(
    "temper_effect_failures_total", "After-commit effects that failed (repaired by reconcilers)", ["effect"]
)
ADMISSION_WAIT = Histogram(
    "temper_admission_wait_seconds",
    "Time a job waited in the queue before the dispatcher gave it a worker slot (the stage it was "
    "admitted to: labelled, so that nothing opens a multiprocess file at import)",
    ["stage"],
    buckets=(0.1, 1, 10, 60, 300, 1800, 3600, 4 * 3600, 24 * 3600),
)

AUTH_FAILURES = Counter(
    "temper_auth_failures_total",
    "Requests with a missing, malformed, unknown or revoked API key: answered 401 (rejected) or, once "
    "the client address is over its failure budget, 429 (rate_limited)",
    ["outcome"],
)

TRITON_RELOADS = Counter(
    "temper_triton_reloads_total",
    "Production model sets the reconciler loaded again on Triton (after a restart or a drift)",
    ["outcome"],
)


class RedactingFilter(logging.Filter):
    """The same redaction for stdlib log records (uvicorn, Celery, libraries), message and arguments."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        # The arguments are masked one by one rather than merged into the message: some formatters
        # (uvicorn's access log) read them by position.
        if isinstance(record.msg, str):
            record.msg = self.redactor.text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self.redactor.value(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = self.redactor.value(record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redactor.text(logging.Formatter().formatException(record.exc_info))
        return True


def configure_logging(json_output: bool = False, level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Logs to stderr, every line (structlog's and the stdlib's) with `secrets` and secret-shaped
    values (API keys, passwords, credentials in URLs) masked: see shared.redaction."""
    redactor = Redactor(secrets)
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper())
    # Every handler there is, not only the root's: uvicorn's access log (which prints query
    # strings) and Celery's have their own, and do not propagate to the root.
    loggers = [
        logging.getLogger(),
        *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict)),
    ]
    for logger in loggers:
        for handler in logger.handlers:
            for existing in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
                handler.removeFilter(existing)
            handler.addFilter(RedactingFilter(redactor))
    renderer = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
