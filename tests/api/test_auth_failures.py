"""Missing or bad API keys are slowed per client address, logged (never the key) and counted; a good
key's use is recorded at most once a minute."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
import structlog
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from shared.db.base import utcnow
from shared.db.models import ApiKey
from shared.db.session import session_scope
from shared.settings import Settings
from tests.support.stack import Stack, running_stack


def _failures(outcome: str) -> float:
    return REGISTRY.get_sample_value("temper_auth_failures_total", {"outcome": outcome}) or 0.0


def test_a_key_guessing_loop_is_slowed_to_the_limit_and_good_keys_are_not(
    embedded_settings: Settings,
) -> None:
    settings = embedded_settings.model_copy(update={"auth_failures_per_minute": 60, "auth_failure_burst": 3})
    with running_stack(settings, with_worker=False) as stack:
        _, good = stack.new_team("research")
        rejected, limited = _failures("rejected"), _failures("rate_limited")
        guesses = [f"tmp_{index:012x}_{'g' * 32}" for index in range(6)]
        # X-Forwarded-For from the client itself changes nothing: only uvicorn, told which proxies
        # to trust, may rewrite the client address.
        with structlog.testing.capture_logs() as logs:
            answers = [
                stack.client.get(
                    "/v1/jobs", headers={**stack.headers(guess), "X-Forwarded-For": f"10.9.9.{index}"}
                )
                for index, guess in enumerate(guesses)
            ]
        assert [answer.status_code for answer in answers] == [401, 401, 401, 429, 429, 429]
        refused = answers[3]
        assert refused.headers["Retry-After"] == "1"  # 60 a minute: the next failure is allowed in 1 s
        error = refused.json()["error"]
        assert error["code"] == "rate_limited" and error["details"] == {"limit_per_minute": 60, "burst": 3}
        assert "missing or bad API key from this address" in error["message"]
        assert (_failures("rejected") - rejected, _failures("rate_limited") - limited) == (3, 3)
        # One warning for the run of refusals, naming the address; no line holds a key.
        warnings = [line for line in logs if line["log_level"] == "warning"]
        assert len(warnings) == 1 and warnings[0]["client"] == "testclient"
        assert not any(guess[4:16] in str(logs) or guess in str(logs) for guess in guesses)

        # A missing key is a failure like a bad one.
        assert stack.client.get("/v1/jobs").status_code == 429
        # Good keys go on working, from the same address and from another one.
        assert stack.client.get("/v1/jobs", headers=stack.headers(good)).status_code == 200
        assert stack.client.get("/v1/teams", headers=stack.headers()).status_code == 200
        with TestClient(stack.client.app, client=("192.0.2.7", 40000)) as other:
            assert other.get("/v1/jobs", headers=stack.headers(good)).status_code == 200
            # Another address has its own budget.
            assert other.get("/v1/jobs", headers=stack.headers(guesses[0])).status_code == 401


def test_the_failure_limit_can_be_turned_off(embedded_settings: Settings) -> None:
    settings = embedded_settings.model_copy(update={"auth_failures_per_minute": 0, "auth_failure_burst": 1})
    with running_stack(settings, with_worker=False) as stack:
        statuses = {
            stack.client.get("/v1/jobs", headers=stack.headers("tmp_x_" + "y" * 20)).status_code
            for _ in range(5)
        }
        assert statuses == {401}


def test_a_keys_last_use_is_recorded_at_most_once_a_minute(api_stack: Stack) -> None:
    team_id, _ = api_stack.new_team("research")
    key_id, key = api_stack.new_key(team_id, ["read"], name="dash")
    listed = lambda: next(  # noqa: E731
        row["last_used_at"]
        for row in api_stack.client.get(f"/v1/teams/{team_id}/keys", headers=api_stack.headers()).json()
        if row["id"] == key_id
    )
    assert listed() is None
    assert api_stack.client.get("/v1/jobs", headers=api_stack.headers(key)).status_code == 200
    first = listed()
    assert first is not None

    factory = api_stack.client.app.state.session_factory  # type: ignore[attr-defined]
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    engine = api_stack.client.app.state.engine  # type: ignore[attr-defined]
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        for _ in range(20):
            assert api_stack.client.get("/v1/jobs", headers=api_stack.headers(key)).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    # Within the minute: no write at all, not even a conditional UPDATE that changes nothing.
    assert not [statement for statement in statements if statement.lstrip().upper().startswith("UPDATE")]
    assert listed() == first

    # A minute on, the next use is recorded again.
    with session_scope(factory) as session:
        session.execute(
            sa.update(ApiKey)
            .where(ApiKey.id == uuid.UUID(key_id))
            .values(last_used_at=utcnow() - timedelta(minutes=2))
        )
    stale = listed()
    assert api_stack.client.get("/v1/jobs", headers=api_stack.headers(key)).status_code == 200
    assert listed() > stale and listed() >= first


def test_api_processes_share_an_addresss_failure_budget_in_redis(
    embedded_settings: Settings, redis_prefix: str
) -> None:
    import pytest
    import redis

    from services.api.auth_failures import refuse_failed_authentication
    from services.api.ratelimit import RedisRateLimiter
    from shared.errors import NotAuthenticated, RateLimited
    from tests.conftest import REDIS_URL

    settings = embedded_settings.model_copy(update={"auth_failures_per_minute": 60, "auth_failure_burst": 2})
    client = redis.Redis.from_url(REDIS_URL)
    first, second = RedisRateLimiter(client, redis_prefix), RedisRateLimiter(client, redis_prefix)
    refused = NotAuthenticated("the API key is unknown or revoked")
    refuse_failed_authentication(first, settings, "198.51.100.1", refused)
    refuse_failed_authentication(second, settings, "198.51.100.1", refused)
    with pytest.raises(RateLimited) as limited:  # the third failure, whichever process sees it
        refuse_failed_authentication(first, settings, "198.51.100.1", refused)
    assert limited.value.headers() == {"Retry-After": "1"}
    refuse_failed_authentication(second, settings, "198.51.100.2", refused)  # another address
    client.close()
