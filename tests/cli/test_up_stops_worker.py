"""`temper up` owns its worker: stopping it (SIGTERM, as a service manager or a terminal does) stops
the worker, its pool and the beat it embeds, instead of leaving them running on their own."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.stack import ADMIN_KEY, REPO_ROOT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = task / "children"
        if children.exists():
            for child in map(int, children.read_text().split()):
                found += [child, *_descendants(child)]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.timeout(120)
def test_sigterm_to_temper_up_stops_its_worker(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "TEMPER_DATA_DIR": str(tmp_path / "var"),
        "TEMPER_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
        "TOKENIZERS_PARALLELISM": "false",
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "services.cli.main", "up", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).raise_for_status()
                workers = [
                    pid
                    for pid in _descendants(up.pid)
                    if b"celery" in Path(f"/proc/{pid}/cmdline").read_bytes()
                ]
                if len(workers) >= 2:  # the worker's main process and at least one pool process
                    break
            except (httpx.HTTPError, FileNotFoundError):
                pass
            time.sleep(0.5)
        assert len(workers) >= 2, "temper up did not start its worker"

        up.send_signal(signal.SIGTERM)
        up.wait(timeout=45)

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.2)
        assert [pid for pid in workers if _alive(pid)] == []
    finally:
        if up.poll() is None:
            up.kill()
