"""The embedded stack on one machine: SQLite, a SQLite broker, local object store, one worker."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from shared.settings import Settings, get_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
console = Console()


def migrate(revision: str = "head", settings: Settings | None = None) -> None:
    from shared.db.migrate import upgrade

    settings = settings or get_settings()
    upgrade(settings.resolved_database_url, revision)


def _without_password(database_url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(database_url).render_as_string(hide_password=True)


def local_admin_key(settings: Settings) -> str:
    """The admin key of a local install: the configured one, or one generated once into var/."""
    if settings.bootstrap_admin_key is not None:
        return settings.bootstrap_admin_key.get_secret_value()
    key_file = settings.data_root / "admin.key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(f"tmp_{secrets.token_hex(6)}_{secrets.token_urlsafe(24).replace('_', '-')}\n")
        key_file.chmod(0o600)
    return key_file.read_text().strip()


# How long a stopping worker may take to finish (or hand back) its tasks before it is killed.
WORKER_STOP_TIMEOUT_S = 30


@contextmanager
def worker_process(
    env: dict[str, str],
    log_path: Path | None = None,
    concurrency: int = 2,
    log_level: str = "WARNING",
    with_beat: bool = False,
    queues: str = "default,train,evaluate,export",
    imports: tuple[str, ...] = (),
) -> Iterator[subprocess.Popen]:
    """A real Celery worker process on every queue. The embedded default gives it two slots, so
    that a long training task does not block the short tasks queued behind it; `with_beat` runs
    celery beat inside it (the reaper and the Triton reconcile), for a stack with no other beat.

    The worker leads its own process group, so that leaving the block stops all of it: SIGTERM to
    its main process first (a warm shutdown: a training stage saves and hands its job back), then,
    if it has not exited in time, SIGKILL to the group, pool processes included. `imports` are
    more task modules for the worker to load (`celery worker -I`).
    """
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "services.worker.app",
        "worker",
        "-Q",
        queues,
        "-c",
        str(concurrency),
        "--pool",
        "prefork",
        "--without-gossip",
        "--without-mingle",
        "-l",
        log_level,
        *(["--beat"] if with_beat else []),
        *(["--include", ",".join(imports)] if imports else []),
    ]
    output = log_path.open("ab") if log_path else None
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=WORKER_STOP_TIMEOUT_S)
        # Pool processes that outlived their main process (it was killed, or hung) go too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if output:
            output.close()


def embedded_env(settings: Settings, admin_key: str) -> dict[str, str]:
    return {
        **os.environ,
        "TEMPER_DATA_DIR": str(settings.data_root),
        "TEMPER_BOOTSTRAP_ADMIN_KEY": admin_key,
        "TOKENIZERS_PARALLELISM": "false",
    }


def run_embedded(host: str, port: int, with_worker: bool = True) -> None:
    import uvicorn

    settings = get_settings()
    console.print(f"migrating {_without_password(settings.resolved_database_url)}")
    migrate(settings=settings)
    admin_key = local_admin_key(settings)
    env = embedded_env(settings, admin_key)
    os.environ.update({"TEMPER_BOOTSTRAP_ADMIN_KEY": admin_key})
    get_settings.cache_clear()
    console.print(f"admin key: {admin_key}  (also in {settings.data_root / 'admin.key'})")
    console.print(f"API: http://{host}:{port}  docs: http://{host}:{port}/docs")
    from services.api.main import create_app

    if not with_worker:
        uvicorn.run(create_app(), host=host, port=port, log_level="warning")
        return
    # uvicorn stops on SIGTERM and then raises the signal again; with Python's default action that
    # would end this process on the spot and leave the worker running. As an exception it unwinds
    # through `worker_process`, which stops the worker.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with worker_process(env, settings.data_root / "worker.log", with_beat=True):
        uvicorn.run(create_app(), host=host, port=port, log_level="warning")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
