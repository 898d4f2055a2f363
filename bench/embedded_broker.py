"""The embedded default's broker: submit-to-start latency and throughput of each candidate.

    .venv/bin/python bench/embedded_broker.py [--messages 2000] [--samples 40]

For each candidate broker, a real Temper worker (prefork, two processes, as `temper up` runs it) on a
fresh data folder takes test-only probe tasks (`tests.support.broker_probe_task`) that record when
they started. Latency: one probe at a time sent to the idle worker, from send to start. Throughput:
`--messages` probes sent at once from this process, from the first send to the last start.
Candidates: `filesystem://` (kombu's, what the embedded default used), `atomic-filesystem://`
(the same, writing each message under a temporary name and renaming it), and the embedded SQLite
broker (`shared.embedded_broker`). Both filesystem ones poll as often as the SQLite one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench import embedded_broker_worker  # noqa: E402  (registers atomic-filesystem://)
from shared.queue import create_celery_app  # noqa: E402
from shared.settings import Settings  # noqa: E402
from tests.support.broker_probe import PROBE_LOG_ENV, read_deliveries, send_probes  # noqa: E402

CANDIDATES = {"filesystem": "filesystem://", "atomic-filesystem": "atomic-filesystem://", "sqlite": None}


def wait_for(log: Path, count: int, worker: subprocess.Popen[bytes], timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while len(read_deliveries(log)) < count:
        if worker.poll() is not None:
            raise RuntimeError("the worker stopped")
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {count} probes started in {timeout_s} s")
        time.sleep(0.001 if count < 100 else 0.05)


def measure(name: str, url: str | None, messages: int, samples: int) -> dict[str, float]:
    data = Path(tempfile.mkdtemp(prefix=f"broker-{name}-"))
    settings = Settings(data_dir=data, broker_url=url)
    log = data / "probes.log"
    env = {
        **os.environ,
        "TEMPER_DATA_DIR": str(data),
        PROBE_LOG_ENV: str(log),
        "TOKENIZERS_PARALLELISM": "false",
    }
    if url:
        env["TEMPER_BROKER_URL"] = url
    app = create_celery_app(settings)
    if url and "filesystem" in url:
        app.conf.broker_transport_options = embedded_broker_worker.filesystem_options(settings)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench.embedded_broker_worker", "worker", "-Q", "default",
         "-c", "2", "--pool", "prefork", "--without-gossip", "--without-mingle", "-l", "WARNING"],
        cwd=REPO_ROOT, env=env, stdout=(data / "worker.log").open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        send_probes(app, 0, 1)  # waits for the worker to boot; not counted
        wait_for(log, 1, worker)
        waits = []
        for sequence in range(1, samples + 1):
            send_probes(app, sequence, 1)
            wait_for(log, sequence + 1, worker)
            last = read_deliveries(log)[-1]
            waits.append(last.started_at - last.sent_at)
        first = samples + 1
        started = time.time()
        send_probes(app, first, messages)
        sent_s = time.time() - started
        wait_for(log, first + messages, worker)
        deliveries = read_deliveries(log)
        elapsed = max(d.started_at for d in deliveries) - started
        assert len({d.sequence for d in deliveries}) == len(deliveries) == first + messages
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    waits.sort()
    return {
        "p50": statistics.median(waits) * 1000,
        "p95": waits[int(0.95 * (len(waits) - 1))] * 1000,
        "send": messages / sent_s,
        "throughput": messages / elapsed,
        "elapsed": elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    rows = {name: measure(name, url, args.messages, args.samples) for name, url in CANDIDATES.items()}
    print(f"\nidle worker (prefork, 2 processes), {args.samples} probes one at a time; then {args.messages} "
          f"sent at once from one process; {os.cpu_count()} CPUs")  # fmt: skip
    print(
        f"{'broker':18} {'start p50 ms':>12} {'start p95 ms':>12} {'sent/s':>8} {'started/s':>10} {'all in s':>9}"
    )
    for name, row in rows.items():
        print(f"{name:18} {row['p50']:>12.0f} {row['p95']:>12.0f} {row['send']:>8.0f} {row['throughput']:>10.0f} "
              f"{row['elapsed']:>9.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
