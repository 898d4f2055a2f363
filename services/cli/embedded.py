"""The embedded stack on one machine: SQLite, a filesystem broker, local object store, one worker."""

from __future__ import annotations

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


@contextmanager
def worker_process(
    env: dict[str, str], log_path: Path | None = None, concurrency: int = 2, log_level: str = "WARNING"
) -> Iterator[subprocess.Popen]:
    """A real Celery worker process on every queue. The embedded default gives it two slots, so
    that a long training task does not block the short tasks queued behind it."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "services.worker.app",
        "worker",
        "-Q",
        "default,train,evaluate,export",
        "-c",
        str(concurrency),
        "--pool",
        "prefork",
        "--without-gossip",
        "--without-mingle",
        "-l",
        log_level,
    ]
    output = log_path.open("ab") if log_path else None
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
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
    with worker_process(env, settings.data_root / "worker.log"):
        uvicorn.run(create_app(), host=host, port=port, log_level="warning")
