"""pytest fixtures for an S3-compatible server on loopback: moto's server, run as a subprocess.

A real HTTP server (not in-process mocking) so that the MinIO client, its signing, multipart
uploads and presigned URLs are exercised over the wire exactly as against MinIO.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared.storage.s3 import MinioObjectStore

S3_ACCESS_KEY = "testing"
S3_SECRET_KEY = "testing"
S3_REGION = "us-east-1"

_STARTUP_TIMEOUT_S = 30.0
_START_ATTEMPTS = 3


@dataclass
class _SharedServer:
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    users: int = 0


_shared_server = _SharedServer()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start moto's S3 server on a free loopback port; yield its endpoint "127.0.0.1:PORT"."""
    # This module is both a registered plugin and imported into test packages, which gives pytest
    # two session fixtures; they share one server instead of starting two.
    if _shared_server.process is None:
        _shared_server.process, _shared_server.port = _start_server(tmp_path_factory.mktemp("s3_server"))
    _shared_server.users += 1
    try:
        yield f"127.0.0.1:{_shared_server.port}"
    finally:
        _shared_server.users -= 1
        if _shared_server.users == 0:
            _stop(_shared_server.process)
            _shared_server.process = None


@pytest.fixture
def s3_store(s3_server: str) -> Iterator[MinioObjectStore]:
    """A MinioObjectStore on a fresh bucket of the session's server, emptied afterwards."""
    store = MinioObjectStore(
        endpoint=s3_server,
        access_key=S3_ACCESS_KEY,
        secret_key=S3_SECRET_KEY,
        bucket=f"temper-test-{uuid.uuid4().hex[:16]}",
        region=S3_REGION,
    )
    store.ensure_bucket()
    yield store
    for info in list(store.list()):
        store.delete(info.key)


def _start_server(log_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start the server, trying a new port if the probed one was taken before moto bound it."""
    for attempt in range(1, _START_ATTEMPTS + 1):
        port = _free_loopback_port()
        log_path = log_dir / f"moto-{attempt}.log"
        # The log goes to a file, not a pipe: a pipe nobody drains blocks the server once full.
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "--host", "127.0.0.1", "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if _wait_until_answering(process, port):
            return process, port
        if process.poll() is None:
            process.kill()
            process.wait()
            pytest.fail(
                f"moto S3 server did not answer on 127.0.0.1:{port} within "
                f"{_STARTUP_TIMEOUT_S:.0f}s; its output:\n{_tail(log_path)}"
            )
    pytest.fail(
        f"moto S3 server exited with code {process.returncode} before answering, "
        f"{_START_ATTEMPTS} times; its last output:\n{_tail(log_path)}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_answering(process: subprocess.Popen[bytes], port: int) -> bool:
    """True once the server answers HTTP; False if it exits or the startup timeout passes."""
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0)
        except httpx.TransportError:
            time.sleep(0.1)
        else:
            return True
    return False


def _tail(log_path: Path, max_chars: int = 4000) -> str:
    return log_path.read_text(errors="replace")[-max_chars:]
