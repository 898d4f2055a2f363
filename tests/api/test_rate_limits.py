"""Per-key rate limits: a 429 with Retry-After and the error body, per key, in-process and in Redis."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from services.api.ratelimit import MemoryRateLimiter, RedisRateLimiter
from shared.settings import Settings
from temper_client import Temper
from tests.conftest import REDIS_URL
from tests.support.live_api import running_api
from tests.support.stack import Stack, running_stack


def test_a_key_over_its_burst_gets_429_with_retry_after(embedded_settings: Settings) -> None:
    # The keys are set up without a limit; the same database is then served with one.
    with running_stack(embedded_settings, with_worker=False) as stack:
        team_id, key = stack.new_team("research")
        _, other = stack.new_team("other")
        _, fast_key = stack.new_key(team_id, ["read"], rate_limit_per_minute=6000)
    settings = embedded_settings.model_copy(update={"rate_limit_per_minute": 60, "rate_limit_burst": 3})
    with running_stack(settings, with_worker=False) as stack:
        answers = [stack.client.get("/v1/jobs", headers=stack.headers(key)) for _ in range(4)]
        assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
        refused = answers[-1]
        assert refused.headers["Retry-After"] == "1"  # one request a second: the next is due within 1 s
        error = refused.json()["error"]
        assert error["code"] == "rate_limited" and error["details"] == {"limit_per_minute": 60, "burst": 3}
        assert "retry after 1 s" in error["message"]
        # Another key is counted on its own.
        assert stack.client.get("/v1/jobs", headers=stack.headers(other)).status_code == 200
        time.sleep(1.05)
        assert stack.client.get("/v1/jobs", headers=stack.headers(key)).status_code == 200

        # A key's own limit overrides the server's: at 6000 a minute, a slot frees every 10 ms
        # (the server's 60 a minute would need a whole second).
        burst = [stack.client.get("/v1/jobs", headers=stack.headers(fast_key)).status_code for _ in range(3)]
        time.sleep(0.05)
        after = stack.client.get("/v1/jobs", headers=stack.headers(fast_key)).status_code
        assert [*burst, after] == [200] * 4


def test_the_sdk_waits_out_retry_after(embedded_settings: Settings) -> None:
    settings = embedded_settings.model_copy(update={"rate_limit_per_minute": 120, "rate_limit_burst": 1})
    with running_api(settings) as api:
        waits: list[float] = []
        with Temper(api.url, api.admin_key, sleep=lambda s: (waits.append(s), time.sleep(s))) as temper:
            for _ in range(3):
                temper.teams.list()
        assert waits and all(0 < wait <= 1 for wait in waits)


def test_gcra_in_process_lets_a_burst_through_then_one_per_interval() -> None:
    now = [1000.0]
    limiter = MemoryRateLimiter(clock=lambda: now[0])
    assert [limiter.hit("k", 60, 2).allowed for _ in range(3)] == [True, True, False]
    assert 0.9 < limiter.hit("k", 60, 2).retry_after_s <= 1.0
    now[0] += 1.0
    assert limiter.hit("k", 60, 2).allowed
    assert limiter.hit("other", 60, 2).allowed


def test_gcra_in_redis_is_shared_and_one_round_trip(redis_prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    first, second = RedisRateLimiter(client, redis_prefix), RedisRateLimiter(client, redis_prefix)
    decisions = [limiter.hit("key-1", 60, 2) for limiter in (first, second, first)]
    # Two API processes share the count: the third request is refused whichever process gets it.
    assert [decision.allowed for decision in decisions] == [True, True, False]
    assert 0.9 < decisions[-1].retry_after_s <= 1.0 and decisions[-1].retry_after_header == 1
    assert first.hit("key-2", 60, 2).allowed
    # The state expires by itself: one key per API key, gone once it holds nothing.
    ttl = client.pttl(f"{redis_prefix}ratelimit:key-1")
    assert 0 < ttl <= 2100
    client.close()


def test_an_unreachable_redis_lets_requests_through() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    assert RedisRateLimiter(client, "x:").hit("key", 60, 1).allowed


def test_the_api_counts_in_redis_when_the_broker_is_redis(
    embedded_settings: Settings, redis_prefix: str, tmp_path: Path
) -> None:
    settings = embedded_settings.model_copy(
        update={
            "broker_url": REDIS_URL,
            "broker_key_prefix": redis_prefix,
            "rate_limit_per_minute": 60,
            "rate_limit_burst": 2,
        }
    )
    with running_stack(settings, with_worker=False) as stack:
        assert isinstance(stack.client.app.state.rate_limiter, RedisRateLimiter)  # type: ignore[attr-defined]
        statuses = [stack.client.get("/v1/teams", headers=stack.headers()).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
    client = redis.Redis.from_url(REDIS_URL)
    assert list(client.scan_iter(match=f"{redis_prefix}ratelimit:*"))
    client.close()


def test_no_limit_when_it_is_off(api_stack: Stack) -> None:
    assert api_stack.settings.rate_limit_per_minute == 0
    assert {
        api_stack.client.get("/v1/teams", headers=api_stack.headers()).status_code for _ in range(150)
    } == {200}
