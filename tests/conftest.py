"""Shared fixtures. Services (Postgres, Redis, S3) are real; each test gets its own database,
Redis key prefix and bucket, and drops them afterwards. Under CI=true a missing service fails."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
import torch

from shared.settings import Settings
from tests.support.stack import ADMIN_KEY
from tests.support.tickets import WORDS
from tests.support.tiny_models import build_tiny_bert

pytest_plugins = ["tests.support.s3_server", "tests.support.llm_fixtures"]

POSTGRES_ADMIN_URL = os.environ.get("TEMPER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEMPER_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _service_missing(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc}); these tests need it"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    name = f"temper_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        _service_missing("PostgreSQL", exc)
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"temper-test-{uuid.uuid4().hex[:12]}:"
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        _service_missing("Redis", exc)
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


# Tests drive the API far faster than a person would; the rate limit is tested on its own
# (tests/api/test_rate_limits.py) and off elsewhere, so that no other test depends on its timing.
NO_RATE_LIMIT = 0


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        data_dir=tmp_path / "var",
        bootstrap_admin_key=ADMIN_KEY,
        rate_limit_per_minute=NO_RATE_LIMIT,
    )


@pytest.fixture
def services_settings(tmp_path: Path, postgres_url: str, redis_prefix: str, s3_server: str) -> Settings:
    return Settings(
        environment="test",
        data_dir=tmp_path / "var",
        bootstrap_admin_key=ADMIN_KEY,
        database_url=postgres_url,
        broker_url=REDIS_URL,
        broker_key_prefix=redis_prefix,
        object_store_url=f"s3://{s3_server}/temper-{uuid.uuid4().hex[:10]}",
        object_store_access_key="testing",
        object_store_secret_key="testing",
        object_store_region="us-east-1",
        rate_limit_per_minute=NO_RATE_LIMIT,
    )


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    vocabulary = [" ".join(words) for words in WORDS.values()] + ["my issue number about the"]
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), vocabulary, hidden_size=32, num_layers=2)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run a CPU-heavy test on one torch thread, restored afterwards.

    On the shared 2-core CI machine, torch's default of one thread per core loses badly to
    contention: measured here, SmolLM2 generation took 57 s on two threads and 15 s on one.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
