"""Prometheus metrics of a worker: all its pool processes, on TEMPER_WORKER_METRICS_PORT.

Tasks run in forked pool processes, each with its own counters, so the worker uses
prometheus_client's multiprocess mode: PROMETHEUS_MULTIPROC_DIR must be set in the environment
before the worker starts (the compose file and the chart do), and the main process serves what all
children wrote there. Without a port nothing is served.
"""

from __future__ import annotations

import os
from pathlib import Path

import structlog
from celery.signals import celeryd_init, worker_process_shutdown

from services.worker.app import settings

log = structlog.get_logger(__name__)


@celeryd_init.connect
def _serve_metrics(**_: object) -> None:
    if settings.worker_metrics_port is None:
        return
    from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

    registry = REGISTRY
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        from prometheus_client import multiprocess

        # Files of an earlier run of this container would be summed with this one's.
        Path(folder).mkdir(parents=True, exist_ok=True)
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        log.warning("worker.metrics_main_process_only", reason="PROMETHEUS_MULTIPROC_DIR is not set")
    start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_address, registry=registry)
    log.info("worker.metrics", address=settings.worker_metrics_address, port=settings.worker_metrics_port)


@worker_process_shutdown.connect
def _forget_process(**_: object) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())
