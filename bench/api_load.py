"""Control-plane load: the API on Postgres with 100k jobs and 1M events, at a fixed request rate.

Seeds a fresh Postgres database (migrated with Alembic) with `--jobs` jobs over `--teams` teams and
`--events` events, then starts `--api-processes` API processes (as compose or the chart scale it:
replicas behind a load balancer; the client spreads requests over them) and, for each route, sends
requests at a fixed rate for a fixed time (an open loop: each request has its send time on a
schedule, and its latency counts from that time, so a slow answer delays the ones behind it in the
figures too). The generator runs in `--load-processes` processes with `--clients` slots in all,
each slot with its own connection and one request in flight: nothing piles up in a connection
pool, and each request's send lag (how late it left against its schedule) is reported, so that a
generator that falls behind shows as such instead of as server latency. Routes: GET /v1/jobs/{id},
GET /v1/jobs with a status filter, an events page, and POST /v1/jobs into a paused queue (admission
paused, so the workers do not run them). The peer measured in the same run at the same rate is
`GET /healthz`: the floor of the HTTP stack, middleware and auth-free routing on this machine; each
route's p50 is also shown as a ratio to it. Then `POST /v1/queue/resume` is timed with
`--resume-queued` jobs waiting (2,000 and 20,000), with how long the dispatcher takes to admit what
the free slots allow. Then, with the queue resumed and one idle worker (Redis broker), jobs are
submitted one at a time and the time from sending the POST to the worker starting the job
(`started_at`) is measured. The EXPLAIN plan of each hot query is printed to show the indexes used.

    .venv/bin/python bench/api_load.py [--jobs 100000 --events 1000000 --rate 200 --submit-rate 250]

Needs PostgreSQL (TEMPER_TEST_POSTGRES, default postgresql://postgres@127.0.0.1:5432/postgres) and
Redis (TEMPER_TEST_REDIS, default redis://127.0.0.1:6379/0). The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import redis

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from load_generator import open_loop, percentile  # noqa: E402

from shared.db.migrate import upgrade as upgrade_database  # noqa: E402
from shared.db.session import create_db_engine, create_session_factory  # noqa: E402
from shared.teams.service import TeamService  # noqa: E402
from shared.workers.registration import Advertiser, WorkerIdentity  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get("TEMPER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEMPER_TEST_REDIS", "redis://127.0.0.1:6379/0")
PEPPER = "bench-pepper-" + "x" * 20
ADMIN_KEY = "tmp_benchadmin_" + "a" * 32
TEAM_KEY = "tmp_benchteam_" + "b" * 32
FINISHED = ("succeeded",) * 7 + ("failed",) * 2 + ("cancelled",)
MINILM_SHAPE = {
    "architecture": {
        "model_type": "bert", "hidden_size": 384, "layers": 6, "attention_heads": 12,
        "intermediate_size": 1536, "vocab_size": 30522, "gated_mlp": False,
    },
    "parameters": {"total": 22_713_216, "embedding": 11_918_592, "counted_from": "safetensors"},
}  # fmt: skip
SLOTS = 1000  # the deployment's worker slots in this bench (TEMPER_DISPATCH_SLOTS)


# Seeding ---------------------------------------------------------------------------------------------


@dataclass
class Seeded:
    team_id: uuid.UUID
    job_ids: list[uuid.UUID]  # of the measured team
    train_dataset_id: uuid.UUID
    team_ids: list[uuid.UUID]
    dataset_ids: list[uuid.UUID]
    base_model_id: uuid.UUID


def seed(url: str, jobs: int, events: int, teams: int, seed_value: int) -> Seeded:
    """Teams, keys, a base model, datasets, `jobs` jobs and `events` events, written with COPY."""
    rng = random.Random(seed_value)
    now = datetime.now(UTC)
    team_ids = [uuid.uuid4() for _ in range(teams)]
    base_model_id = uuid.uuid4()
    dataset_ids = [uuid.uuid4() for _ in range(teams)]
    with psycopg.connect(url) as connection:
        cursor = connection.cursor()
        with cursor.copy("COPY teams (id, name, created_at, updated_at) FROM STDIN") as copy:
            for index, team_id in enumerate(team_ids):
                copy.write_row((team_id, f"team-{index:03d}", now, now))
        # With the shape registration keeps (all-MiniLM-L6-v2's), so that every submit runs the
        # memory check against the train worker advertised below, as it does in a deployment.
        cursor.execute(
            "INSERT INTO base_models (id, name, task_family, source, shape, created_at, updated_at) "
            "VALUES (%s, 'bench-model', 'text-classification', 'local:/nonexistent', %s, %s, %s)",
            (base_model_id, json.dumps(MINILM_SHAPE), now, now),
        )
        with cursor.copy(
            "COPY datasets (id, team_id, name, task, format, filename, sha256, size_bytes, object_key, "
            "row_count, labels, column_mapping, report, created_at, updated_at) FROM STDIN"
        ) as copy:
            for team_id, dataset_id in zip(team_ids, dataset_ids, strict=True):
                copy.write_row(
                    (dataset_id, team_id, "train", "text-classification", "jsonl", "train.jsonl", "0" * 64,
                     1000, f"datasets/{'0' * 64}", 1000, '["a", "b"]', "{}", "{}", now, now)
                )  # fmt: skip
        job_rows = []
        spec = json.dumps({"base_model": "bench-model", "hyperparameters": {"epochs": 3}})
        with cursor.copy(
            "COPY jobs (id, team_id, base_model_id, train_dataset_id, name, status, attempt, spec, "
            "progress, latest_metrics, result, completed_stages, created_at, updated_at, started_at, "
            "finished_at, admitted_at, worker_seconds) FROM STDIN"
        ) as copy:
            for index in range(jobs):
                team_index = index % teams
                job_id = uuid.uuid4()
                # Old jobs have finished; of the newest hundred, a few run and the rest wait.
                newest = jobs - index
                if newest <= 20:
                    status = "training"
                elif newest <= 100:
                    status = "queued"
                else:
                    status = rng.choice(FINISHED)
                created = now - timedelta(seconds=(jobs - index) * 60 * 86400 / jobs + rng.uniform(0, 1))
                finished = status in FINISHED
                started = created + timedelta(seconds=30)
                copy.write_row(
                    (job_id, team_ids[team_index], base_model_id, dataset_ids[team_index], f"job {index}",
                     status, 1, spec, '{"step": 10, "total_steps": 10}', '{"train_loss": 0.1}', "{}", "[]",
                     created, created, started if status != "queued" else None,
                     started + timedelta(minutes=20) if finished else None,
                     created if status != "queued" else None, 1200.0 if finished else None)
                )  # fmt: skip
                job_rows.append((job_id, team_index, created))
        per_job = max(1, events // jobs)
        with cursor.copy("COPY job_events (job_id, type, message, data, created_at) FROM STDIN") as copy:
            for job_id, _, created in job_rows:
                for step in range(per_job):
                    copy.write_row(
                        (job_id, "progress", None, json.dumps({"step": step, "loss": 1.0 / (step + 1)}),
                         created + timedelta(seconds=step))
                    )  # fmt: skip
        connection.commit()
    # Vacuumed, analyzed and checkpointed now, so that neither autovacuum nor the checkpointer
    # works through the freshly written tables during the measurement.
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
        connection.execute("CHECKPOINT")
    measured = [job_id for job_id, team_index, _ in job_rows if team_index == 0]
    return Seeded(
        team_id=team_ids[0],
        job_ids=measured,
        train_dataset_id=dataset_ids[0],
        team_ids=team_ids,
        dataset_ids=dataset_ids,
        base_model_id=base_model_id,
    )


def install_keys(url: str, team_id: uuid.UUID) -> None:
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    engine = sa.create_engine("postgresql+psycopg://" + url.removeprefix("postgresql://"))
    with Session(engine) as session, session.begin():
        teams = TeamService(session, PEPPER)
        teams.ensure_bootstrap_admin(ADMIN_KEY, team_name="bench-admin")
        teams.issue_key(team_id, "bench", plaintext=TEAM_KEY)
    engine.dispose()


def advertise_train_worker(url: str) -> Advertiser:
    """A train worker's row kept fresh as a running worker keeps its own (with this machine's
    memory): every submit then runs the memory check against it, as it does in a deployment."""
    engine = create_db_engine("postgresql+psycopg://" + url.removeprefix("postgresql://"))
    identity = WorkerIdentity(name="celery@bench-train", queues=["train"], concurrency=1)
    advertiser = Advertiser(create_session_factory(engine), identity, timedelta(seconds=10))
    advertiser.start()
    return advertiser


def explain(url: str, team_id: uuid.UUID, job_id: uuid.UUID) -> dict[str, str]:
    queries = {
        "get job": ("SELECT * FROM jobs WHERE id = %s AND team_id = %s", (job_id, team_id)),
        "list jobs (status filter)": (
            "SELECT * FROM jobs WHERE team_id = %s AND status IN ('succeeded', 'failed') "
            "ORDER BY created_at DESC, id DESC LIMIT 51",
            (team_id,),
        ),
        "events page": (
            "SELECT * FROM job_events WHERE job_id = %s AND id > 0 ORDER BY id LIMIT 100",
            (job_id,),
        ),
        "dispatch: waiting jobs": (
            "SELECT team_id, count(*) FROM jobs WHERE status = 'queued' AND admitted_at IS NULL GROUP BY team_id",
            (),
        ),
    }
    plans = {}
    with psycopg.connect(url) as connection:
        for name, (sql, params) in queries.items():
            rows = connection.execute("EXPLAIN " + sql, params).fetchall()
            plans[name] = " / ".join(row[0].strip() for row in rows if "Scan" in row[0] or "Limit" in row[0])
    return plans


# Load -----------------------------------------------------------------------------------------------


@dataclass
class ResumeFigures:
    queued: int
    answer_ms: float  # POST /v1/queue/resume, sent to answered
    admitted: int  # what the free slots let through
    admitted_after_s: float  # from sending the resume to the last of those admitted


def measure_resume(
    api: str, url: str, seeded: Seeded, queued: int, admin_headers: dict[str, str]
) -> ResumeFigures:
    """Resume a paused queue with `queued` jobs waiting (over every team): how long the answer takes,
    and how long until the dispatcher has admitted all that the free slots allow. Leaves the queue
    paused with nothing waiting."""
    httpx.post(f"{api}/v1/queue/pause", json={"reason": "resume bench"}, headers=admin_headers, timeout=60)
    now = datetime.now(UTC)
    marker = f"resume-{queued}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "UPDATE jobs SET status = 'cancelled', finished_at = now() WHERE status = 'queued'"
        )
        with connection.cursor().copy(
            "COPY jobs (id, team_id, base_model_id, train_dataset_id, name, status, attempt, spec, progress, "
            "latest_metrics, result, completed_stages, created_at, updated_at) FROM STDIN"
        ) as copy:
            for index in range(queued):
                team = index % len(seeded.team_ids)
                created = now + timedelta(microseconds=index)
                copy.write_row(
                    (uuid.uuid4(), seeded.team_ids[team], seeded.base_model_id, seeded.dataset_ids[team], marker,
                     "queued", 0, "{}", "{}", "{}", "{}", "[]", created, created)
                )  # fmt: skip
        connection.execute("ANALYZE jobs")
        running = connection.execute(
            "SELECT count(*) FROM jobs WHERE admitted_at IS NOT NULL AND finished_at IS NULL"
        ).fetchone()
        free = SLOTS - (running[0] if running else 0)
        expected = min(queued, free)
        sent = time.monotonic()
        answer = httpx.post(f"{api}/v1/queue/resume", headers=admin_headers, timeout=60)
        answer_s = time.monotonic() - sent
        answer.raise_for_status()
        deadline = sent + 120
        admitted = 0
        while time.monotonic() < deadline:
            row = connection.execute(
                "SELECT count(*) FROM jobs WHERE name = %s AND admitted_at IS NOT NULL", (marker,)
            ).fetchone()
            admitted = row[0] if row else 0
            if admitted >= expected:
                break
            time.sleep(0.01)
        settled_s = time.monotonic() - sent
        httpx.post(
            f"{api}/v1/queue/pause", json={"reason": "resume bench"}, headers=admin_headers, timeout=60
        )
        connection.execute(
            "UPDATE jobs SET status = 'cancelled', finished_at = now() WHERE status = 'queued'"
        )
    return ResumeFigures(queued, answer_s * 1000, admitted, settled_s)


def purge_broker(prefix: str) -> None:
    """Drop the validate tasks the resume measurements sent for jobs cancelled since."""
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, all its threads included (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_sessions(url: str) -> int:
    """Sessions ever opened on the bench database: connections the API processes' pools opened."""
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def backend_pids(url: str) -> list[int]:
    """The Postgres backends serving the bench database (the API processes' pools)."""
    with psycopg.connect(url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [row[0] for row in rows]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


def submit_to_start(
    api: str, url: str, seeded: Seeded, samples: int, environment: dict[str, str]
) -> list[float]:
    """Seconds from sending POST /v1/jobs to the worker starting the job, one job at a time."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "services.worker.app", "worker", "--pool", "solo",
         "-Q", "default,train,evaluate,export", "--loglevel", "WARNING", "--without-heartbeat",
         "--without-gossip", "--without-mingle"],
        cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {TEAM_KEY}"}
    waits: list[float] = []
    try:
        with (
            httpx.Client(base_url=api, headers=headers, timeout=30) as client,
            psycopg.connect(url, autocommit=True) as connection,
        ):
            # A real dataset in the store, so that the validate stage ends at once (the base model's
            # files do not exist: a permanent failure) and the worker is idle for the next job.
            rows = "\n".join(json.dumps({"text": f"row {i}", "label": "ab"[i % 2]}) for i in range(20))
            upload = client.post(
                "/v1/datasets", files={"file": ("rows.jsonl", rows.encode())}, data={"name": "rows"}
            )
            upload.raise_for_status()
            spec = {"base_model": "bench-model", "train_dataset_id": upload.json()["id"]}
            # The first job also waits for the worker to boot; it is not counted.
            for index in range(samples + 1):
                sent = time.time()
                response = client.post("/v1/jobs", json=spec)
                response.raise_for_status()
                job_id = response.json()["id"]
                started = _wait_for(connection, "SELECT started_at FROM jobs WHERE id = %s", job_id)
                if index:
                    waits.append(started.timestamp() - sent)
                _wait_for(connection, "SELECT finished_at FROM jobs WHERE id = %s", job_id)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return waits


def _wait_for(connection: psycopg.Connection, query: str, job_id: str, timeout_s: float = 120) -> datetime:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = connection.execute(query, (job_id,)).fetchone()
        if row is not None and row[0] is not None:
            value: datetime = row[0]
            return value
        time.sleep(0.005)
    raise RuntimeError(f"job {job_id}: {query!r} gave nothing within {timeout_s} s")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--teams", type=int, default=50)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second, per read route")
    parser.add_argument("--submit-rate", type=float, default=250.0, help="submissions per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per route")
    parser.add_argument(
        "--clients", type=int, default=32, help="requests in flight at most (one connection each), in all"
    )
    # The generator is spread over processes so that its own CPU time (an HTTP client in Python costs
    # about as much per request as a read route) does not become the bottleneck it measures.
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument(
        "--resume-queued",
        type=int,
        nargs="*",
        default=[2_000, 20_000],
        help="jobs waiting when the queue resumes",
    )
    # Separate API processes, as compose and the chart run them (one uvicorn per container, scaled
    # by replicas), each on its own port. Not `uvicorn --workers`: it binds the socket itself,
    # without TCP_NODELAY on accepted connections, and each answer then waits ~40 ms for the
    # client's delayed ACK, which would measure the kernel, not the API.
    parser.add_argument("--api-processes", type=int, default=2)
    parser.add_argument("--start-samples", type=int, default=30)
    parser.add_argument(
        "--routes",
        nargs="*",
        default=None,
        help="measure only the routes whose name contains one of these (and the peer)",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    name = f"temper_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    work = Path(tempfile.mkdtemp(prefix="temper-bench-"))
    environment = {
        **os.environ,
        "TEMPER_ENVIRONMENT": "test",
        "TEMPER_DATABASE_URL": url,
        "TEMPER_BROKER_URL": REDIS_URL,
        "TEMPER_BROKER_KEY_PREFIX": f"{name}:",
        "TEMPER_DATA_DIR": str(work / "var"),
        "TEMPER_API_KEY_PEPPER": PEPPER,
        "TEMPER_LOG_LEVEL": "WARNING",
        "TEMPER_DISPATCH_SLOTS": str(SLOTS),
        "TEMPER_MAX_CONCURRENT_JOBS_PER_TEAM": "1000",
        # The per-key limiter runs (one Redis round trip a request, as in production) but with a
        # budget this load never exhausts: a 429 would measure the limit, not the route.
        "TEMPER_RATE_LIMIT_PER_MINUTE": "10000000",
        "TEMPER_RATE_LIMIT_BURST": "100000",
        "TOKENIZERS_PARALLELISM": "false",
    }
    api_processes: list[subprocess.Popen[bytes]] = []
    advertiser: Advertiser | None = None
    try:
        started = time.perf_counter()
        upgrade_database(url)
        seeded = seed(url, args.jobs, args.events, args.teams, args.seed)
        install_keys(url, seeded.team_id)
        advertiser = advertise_train_worker(url)
        print(f"seeded {args.jobs} jobs and {args.events} events over {args.teams} teams in "
              f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        ports = [free_port() for _ in range(args.api_processes)]
        for port in ports:
            api_processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "uvicorn", "services.api.main:create_app", "--factory",
                     "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
                    cwd=REPO_ROOT, env=environment,
                )
            )  # fmt: skip
        apis = [f"http://127.0.0.1:{port}" for port in ports]
        api = apis[0]
        for url_ in apis:
            wait_http(f"{url_}/healthz")
        team_headers = {"Authorization": f"Bearer {TEAM_KEY}"}
        admin_headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        httpx.post(
            f"{api}/v1/queue/pause", json={"reason": "load test"}, headers=admin_headers
        ).raise_for_status()
        job_ids = [str(job_id) for job_id in seeded.job_ids]
        shuffled = random.Random(args.seed).sample(job_ids, len(job_ids))
        submit_spec = {"base_model": "bench-model", "train_dataset_id": str(seeded.train_dataset_id)}
        scenarios = {
            "GET /healthz (peer)": lambda i: ("GET", "/healthz", {}, 200),
            "GET /v1/jobs/{id}": lambda i: ("GET", f"/v1/jobs/{shuffled[i % len(shuffled)]}", {"headers": team_headers}, 200),
            "GET /v1/jobs?status=": lambda i: (
                "GET", "/v1/jobs", {"headers": team_headers,
                                    "params": {"status": ["succeeded", "failed"], "limit": 50}}, 200),
            "GET /v1/jobs/{id}/events": lambda i: (
                "GET", f"/v1/jobs/{shuffled[i % len(shuffled)]}/events", {"headers": team_headers,
                                                                   "params": {"limit": 100}}, 200),
            "POST /v1/jobs (paused)": lambda i: (
                "POST", "/v1/jobs", {"headers": team_headers, "json": submit_spec}, 201),
        }  # fmt: skip
        # The load generator's own garbage collections would stall its event loop and count as
        # latency of whatever route is being measured: what seeding left is frozen out of sight.
        gc.collect()
        gc.freeze()
        figures = []
        for route, make in scenarios.items():
            if args.routes and "peer" not in route and not any(part in route for part in args.routes):
                continue
            rate = args.submit_rate if route.startswith("POST") else args.rate
            # Each route's code paths and every process's connection pool warm first, unmeasured.
            open_loop(apis, make, 50, 1, args.clients, "warm-up", args.load_processes)
            api_pids = [process.pid for process in api_processes]
            sessions_before = database_sessions(url)
            backends_before = {pid: cpu_seconds(pid) for pid in backend_pids(url)}
            api_before = sum(cpu_seconds(pid) for pid in api_pids)
            row = open_loop(apis, make, rate, args.duration, args.clients, route, args.load_processes)
            row.api_cpu_ms = (sum(cpu_seconds(pid) for pid in api_pids) - api_before) * 1000 / row.sent
            backends_after = {pid: cpu_seconds(pid) for pid in backend_pids(url)}
            # The two looks at the backends above opened a session each.
            row.new_db_sessions = database_sessions(url) - sessions_before - 3
            row.db_cpu_ms = (
                sum(spent - backends_before.get(pid, 0.0) for pid, spent in backends_after.items())
                * 1000
                / row.sent
            )
            figures.append(row)
        # What the paused submits left is cancelled first; each measurement leaves the queue paused.
        resumes = [measure_resume(api, url, seeded, queued, admin_headers) for queued in args.resume_queued]
        httpx.post(f"{api}/v1/queue/resume", headers=admin_headers, timeout=60).raise_for_status()
        purge_broker(environment["TEMPER_BROKER_KEY_PREFIX"])
        waits = submit_to_start(api, url, seeded, args.start_samples, environment)
        plans = explain(url, seeded.team_id, seeded.job_ids[0])
    finally:
        if advertiser is not None:
            advertiser.stop()
        for process in api_processes:
            process.terminate()
            process.wait(timeout=30)
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    floor = figures[0].p50_ms
    print(f"\n{args.jobs} jobs, {args.events} events; {args.rate:g} req/s per read route and {args.submit_rate:g} "
          f"submissions/s, {args.duration:g} s each, at most {args.clients} requests in flight (one connection "
          f"each) from {args.load_processes} load processes, {args.api_processes} API processes, "
          f"{os.cpu_count()} CPUs; load average at the end {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"{'route':26} {'sent':>6} {'errors':>6} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'p50/peer':>8} | {'send lag ms p50':>15} {'p99':>6} {'max':>6} {'own p99':>7}")  # fmt: skip
    for row in figures:
        print(f"{row.route:26} {row.sent:>6} {row.errors:>6} {row.throughput:>7.1f} {row.p50_ms:>7.1f} "
              f"{row.p95_ms:>7.1f} {row.p99_ms:>7.1f} {row.max_ms:>7.1f} {row.p50_ms / floor:>7.2f}x | "
              f"{row.lag_p50_ms:>15.1f} {row.lag_p99_ms:>6.1f} {row.lag_max_ms:>6.1f} {row.own_lag_p99_ms:>7.1f}")  # fmt: skip
    print("\nCPU time per request (ms): what a quiet machine must have to spare at these rates")
    print(
        f"{'route':26} {'API':>6} {'Postgres':>9} {'generator':>10} {'total':>6} {'new DB connections':>19}"
    )
    for row in figures:
        total_cpu = row.api_cpu_ms + row.db_cpu_ms + row.client_cpu_ms
        print(
            f"{row.route:26} {row.api_cpu_ms:>6.2f} {row.db_cpu_ms:>9.2f} {row.client_cpu_ms:>10.2f} {total_cpu:>6.2f} "
            f"{row.new_db_sessions:>19}"
        )
    for row in figures:
        if row.first_error:
            print(f"  {row.route}: first error: {row.first_error}")
    print(
        "(latency counts from each request's scheduled time; send lag: how late the generator sent it, "
        "waiting for a free slot when the server falls behind; own: the part the generator caused itself)"
    )
    for resume in resumes:
        print(f"\nPOST /v1/queue/resume with {resume.queued} jobs waiting: answered in {resume.answer_ms:.0f} ms; "
              f"the dispatcher admitted {resume.admitted} (the free slots) "
              f"{resume.admitted_after_s:.2f} s after the resume was sent")  # fmt: skip
    print(f"\nsubmit-to-start with an idle worker ({len(waits)} jobs, one at a time): "
          f"p50 {statistics.median(waits) * 1000:.0f} ms, p95 {percentile(waits, 95) * 1000:.0f} ms, "
          f"max {max(waits) * 1000:.0f} ms")  # fmt: skip
    print("\nquery plans:")
    for name_, plan in plans.items():
        print(f"  {name_}: {plan}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
