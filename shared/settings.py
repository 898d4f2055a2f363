"""Temper's settings: one object, read from `TEMPER_*` environment variables.

With nothing set, Temper runs embedded: SQLite, a SQLite broker, a local object-store directory
and a local model repository, all under `./var/`. Production is chosen by URLs (Postgres, Redis,
MinIO), and then placeholder secrets are refused.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TEMPER_", env_file=".env", extra="ignore")

    environment: Literal["local", "test", "staging", "production"] = "local"
    data_dir: Path = Path("var")

    # Adapters. None means the embedded default under data_dir.
    database_url: str | None = None
    # Postgres by parts, used when database_url is unset and database_host is set: the password is
    # URL-encoded here, so it may hold any character (`%`, `@`, `:`, `/`).
    database_host: str | None = None
    database_port: int = 5432
    database_user: str = "temper"
    database_password: SecretStr | None = None
    database_name: str = "temper"
    broker_url: str | None = None
    # Prefix for every Redis key the broker writes: lets several installs (or tests) share a server.
    broker_key_prefix: str | None = None
    object_store_url: str | None = None
    object_store_access_key: SecretStr | None = None
    object_store_secret_key: SecretStr | None = None
    object_store_region: str | None = None
    # Where browsers reach the object store (http(s)://host:port), when that differs from the
    # address the services use (s3://minio:9000 inside compose): presigned URLs are signed for it.
    object_store_public_url: str | None = None
    model_repository_url: str | None = None
    triton_url: str | None = None
    # How often celery beat compares what Triton has loaded with the registry's production versions.
    triton_reconcile_interval: timedelta = timedelta(seconds=30)
    # A worker serves Prometheus metrics (all its pool processes together) on this port when set.
    worker_metrics_port: int | None = Field(None, ge=1, le=65535)
    worker_metrics_address: str = "0.0.0.0"

    # Secrets. The key pepper keys the HMAC under which API keys are stored.
    api_key_pepper: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    bootstrap_admin_key: SecretStr | None = None
    # Key-encryption keys for webhook signing secrets at rest, newest first (a JSON list in the
    # environment: TEMPER_WEBHOOK_SECRET_KEYS='["<new>", "<old>"]'). New secrets are encrypted with
    # the first; the others only decrypt rows not yet re-encrypted (shared/webhooks/secret_box.py).
    webhook_secret_keys: list[SecretStr] = Field(default_factory=lambda: [SecretStr(PLACEHOLDER_SECRET)])

    # Limits.
    max_upload_bytes: int = Field(512 * 1024 * 1024, ge=1)
    max_dataset_rows: int = Field(1_000_000, ge=2)
    max_text_chars: int = Field(20_000, ge=1)
    # Admission (`shared.jobs.dispatch`): at most `dispatch_slots` jobs hold a worker at once across
    # the deployment (set it to the number of train worker processes; 0 admits nothing); each team
    # runs at most `max_concurrent_jobs_per_team` of them and, when set, spends at most
    # `gpu_hours_per_period` slot-hours in any `quota_period` (both can be set per team). Jobs over
    # a limit are accepted and wait in `queued`. Beat runs a pass every `dispatch_interval` besides
    # the pass after every submit and every job's end.
    dispatch_slots: int = Field(4, ge=0)
    max_concurrent_jobs_per_team: int = Field(4, ge=1)
    gpu_hours_per_period: float | None = Field(None, gt=0)
    quota_period: timedelta = timedelta(days=30)
    dispatch_interval: timedelta = timedelta(seconds=15)
    # Requests per minute per API key (a key's own rate_limit_per_minute overrides it), with bursts
    # of up to `rate_limit_burst` requests at once; 0 turns the limit off. Counted in Redis when
    # the broker is Redis (shared by every API process), in the process otherwise.
    rate_limit_per_minute: int = Field(600, ge=0)
    rate_limit_burst: int = Field(100, ge=1)
    # Requests with a missing or bad API key, per client address: after a burst of
    # `auth_failure_burst` they are answered 429 at `auth_failures_per_minute` (0 turns this off).
    # The address is the ASGI client's: behind a proxy, uvicorn's --forwarded-allow-ips
    # (FORWARDED_ALLOW_IPS) names the proxies whose X-Forwarded-For it trusts (deploy/README.md).
    auth_failures_per_minute: int = Field(10, ge=0)
    auth_failure_burst: int = Field(20, ge=1)
    # Whether the deployment has GPU workers on the train queue: GPU-only methods (qlora) are
    # refused at submit without them, instead of failing in the train stage.
    gpu_workers: bool = False

    # Dry runs (POST /v1/jobs?dry_run=true) tokenize at most this many rows of each dataset (a
    # larger one is sampled evenly, and the answer says so). Without an earlier job of the base
    # model to measure by, the train loop is estimated at this effective FLOP/s of a worker; a
    # peak memory over `train_worker_memory_gib` (GPU memory on GPU workers) is a warning.
    dry_run_sample_rows: int = Field(2000, ge=10, le=1_000_000)
    estimate_cpu_flops: float = Field(5e10, gt=0)
    estimate_gpu_flops: float = Field(2e14, gt=0)
    train_worker_memory_gib: float | None = Field(None, gt=0)
    # Memory (`shared.jobs.memory_fit`): a job is refused at submit, or fails before training, when
    # its estimated peak plus `memory_safety_margin` (a share of it) fits no train worker; workers
    # advertise their memory every `worker_advertise_interval` and count for `worker_stale_after`
    # after; submit reads them at most every `worker_capacity_cache`.
    memory_safety_margin: float = Field(0.2, ge=0.0, le=2.0)
    worker_advertise_interval: timedelta = timedelta(seconds=30)
    worker_stale_after: timedelta = timedelta(minutes=2)
    worker_capacity_cache: timedelta = timedelta(seconds=5)

    presigned_url_expiry: timedelta = timedelta(hours=1)
    # A stage that hits a transient error (store, broker or database out of reach) is retried after
    # backoff, backoff * 2, ... (each capped at backoff_max), `transient_retry_limit` times; then the
    # job fails with `transient_exhausted`. The defaults give up after about a minute and a half.
    transient_retry_limit: int = Field(5, ge=0, le=50)
    transient_retry_backoff: timedelta = timedelta(seconds=2)
    transient_retry_backoff_max: timedelta = timedelta(seconds=60)
    # No job left behind. A worker running a stage writes the job's heartbeat every
    # `heartbeat_interval`; the reaper (a celery beat task, every `reaper_interval`) takes a stage
    # back from a worker silent for `heartbeat_timeout`, and re-sends a stage no worker took within
    # `stage_pickup_timeout` of the job reaching it (the message was lost, or its worker died
    # between two stages). The pickup timeout is longer because a healthy job may wait that long in
    # a busy queue. A stage taken back more than `max_stage_attempts` times fails the job
    # (`worker_lost`). A cancel that no worker answers within `cancel_grace` is enforced: the task
    # is revoked (SIGKILL) and the job ends cancelled. Why these fit the broker's visibility
    # timeout: `shared.queue.REDIS_VISIBILITY_TIMEOUT`.
    heartbeat_interval: timedelta = timedelta(seconds=30)
    heartbeat_timeout: timedelta = timedelta(minutes=5)
    stage_pickup_timeout: timedelta = timedelta(minutes=30)
    max_stage_attempts: int = Field(3, ge=1, le=50)
    cancel_grace: timedelta = timedelta(seconds=60)
    reaper_interval: timedelta = timedelta(seconds=30)
    # Webhook deliveries: an attempt waits this long for an answer; one that gets a 5xx, a timeout or
    # no connection is tried again after backoff, backoff * 2, ... (each capped at backoff_max), up
    # to `webhook_max_attempts` attempts in all. A 4xx is not retried.
    # The defaults try 8 times over about an hour (30 s, 1 min, 2 min, ... 32 min apart).
    webhook_timeout: timedelta = timedelta(seconds=10)
    webhook_max_attempts: int = Field(8, ge=1, le=30)
    webhook_retry_backoff: timedelta = timedelta(seconds=30)
    webhook_retry_backoff_max: timedelta = timedelta(hours=1)
    # Where the CLI finds the API.
    api_url: str = "http://127.0.0.1:8000"
    log_json: bool = False
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _refuse_placeholders_outside_local(self) -> Settings:
        if self.environment in ("staging", "production"):
            if self.api_key_pepper.get_secret_value() == PLACEHOLDER_SECRET:
                raise ValueError("TEMPER_API_KEY_PEPPER is the placeholder; set a real secret")
            secret = self.object_store_secret_key
            if (
                self.object_store_url
                and self.object_store_url.startswith("s3")
                and (secret is None or secret.get_secret_value() in ("", PLACEHOLDER_SECRET, "minioadmin"))
            ):
                raise ValueError("TEMPER_OBJECT_STORE_SECRET_KEY is missing or a placeholder")
            password = self.database_password
            if (
                not self.database_url
                and self.database_host
                and (password is None or password.get_secret_value() in ("", PLACEHOLDER_SECRET))
            ):
                raise ValueError("TEMPER_DATABASE_PASSWORD is missing or a placeholder")
            keys = [key.get_secret_value() for key in self.webhook_secret_keys]
            if not keys or any(key in ("", PLACEHOLDER_SECRET) or len(key) < 32 for key in keys):
                raise ValueError(
                    "TEMPER_WEBHOOK_SECRET_KEYS is missing, holds the placeholder or a key shorter than "
                    "32 characters; set a JSON list of random keys, newest first (`openssl rand -base64 32`)"
                )
        return self

    def secret_values(self) -> list[str]:
        """Every secret these settings hold, for the log redactor (shared.redaction)."""
        secrets = [self.api_key_pepper, self.bootstrap_admin_key, self.database_password]
        secrets += [self.object_store_secret_key, self.object_store_access_key]
        secrets += self.webhook_secret_keys
        values = [secret.get_secret_value() for secret in secrets if secret is not None]
        for url in (self.database_url, self.broker_url):
            password = make_url_password(url)
            if password:
                values.append(password)
        return [value for value in values if value and value != PLACEHOLDER_SECRET]

    @property
    def data_root(self) -> Path:
        return self.data_dir.resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        if self.database_host:
            password = self.database_password.get_secret_value() if self.database_password else ""
            credentials = quote(self.database_user, safe="")
            if password:
                credentials += ":" + quote(password, safe="")
            host = f"[{self.database_host}]" if ":" in self.database_host else self.database_host
            return (
                f"postgresql://{credentials}@{host}:{self.database_port}/{quote(self.database_name, safe='')}"
            )
        return f"sqlite:///{self.data_root / 'temper.db'}"

    @property
    def resolved_broker_url(self) -> str:
        # The embedded broker: kombu's SQLAlchemy transport on a SQLite file of its own, made fit
        # for several processes by `shared.embedded_broker` (which registers the name).
        return self.broker_url or f"temper-sqlite+sqlite:///{self.embedded_broker_path}"

    @property
    def embedded_broker_path(self) -> Path:
        return self.data_root / "broker.sqlite"

    @property
    def broker_directory(self) -> Path:
        """The folder of the filesystem broker the embedded default used before: messages a
        worker finds there are moved into the SQLite broker (`shared.embedded_broker`)."""
        return self.data_root / "broker"

    @property
    def resolved_object_store_url(self) -> str:
        return self.object_store_url or f"file://{self.data_root / 'objects'}"

    @property
    def resolved_model_repository_url(self) -> str:
        return self.model_repository_url or f"file://{self.data_root / 'model_repository'}"

    @property
    def work_dir(self) -> Path:
        """Scratch space for workers: downloaded datasets, models, checkpoints in progress."""
        return self.data_root / "work"

    @property
    def is_embedded(self) -> bool:
        return self.broker_url is None


def make_url_password(url: str | None) -> str | None:
    """The password in `scheme://user:password@host/...`, if there is one."""
    if not url or "://" not in url:
        return None
    netloc = urlsplit(url).netloc
    if "@" not in netloc:
        return None
    userinfo = netloc.rsplit("@", 1)[0]
    return unquote(userinfo.split(":", 1)[1]) if ":" in userinfo else None


@lru_cache
def get_settings() -> Settings:
    return Settings()
