"""An ASGI app served by uvicorn on a free loopback port in a thread, for clients that need a real
HTTP server (streams, dropped connections) rather than FastAPI's in-process TestClient."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from services.api.main import create_app
from shared.db.migrate import upgrade
from shared.settings import Settings
from tests.support.stack import ADMIN_KEY


@contextmanager
def serve(app: Any, timeout_s: float = 30.0) -> Iterator[str]:
    """Serve `app` (its lifespan included) and yield its base URL; stop it afterwards."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test API server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        listener.close()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


@dataclass
class LiveApi:
    """The real API over HTTP on the embedded default (SQLite, local store; no worker: jobs stay queued)."""

    url: str
    admin_key: str
    settings: Settings


@contextmanager
def running_api(settings: Settings) -> Iterator[LiveApi]:
    upgrade(settings.resolved_database_url)
    with serve(create_app(settings)) as url:
        yield LiveApi(url=url, admin_key=ADMIN_KEY, settings=settings)
