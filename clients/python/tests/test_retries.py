"""The client's retry policy and error typing, against scripted answers (httpx.MockTransport, which
stands in for the API: these answers are hard to get from a real server on demand).

What a user relies on: a refused-before-work answer (503, 429 with Retry-After) is retried after
the wait the server asked for; a request that may have done work (a POST without an
Idempotency-Key) is not repeated on a 500; a job submission is, with the same key; every error
carries the API's code, message and details.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from scripted import JOB, Script, error

from temper_client import (
    ApiUnreachable,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    ServerError,
    ServiceUnavailable,
)


def test_a_503_is_retried_after_the_seconds_the_server_asked_for() -> None:
    script = Script(
        error(503, "transient", "retry shortly", **{"Retry-After": "2"}),
        httpx.Response(200, json=JOB),
    )
    job = script.client().jobs.get(JOB["id"])
    assert str(job.id) == JOB["id"] and len(script.requests) == 2
    assert script.waits == [2.0]


def test_retry_after_as_an_http_date_is_honoured() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    script = Script(
        error(429, "rate_limited", "slow down", **{"Retry-After": format_datetime(when, usegmt=True)}),
        httpx.Response(200, json=JOB),
    )
    script.client().jobs.get(JOB["id"])
    assert len(script.waits) == 1 and 25 <= script.waits[0] <= 30


def test_a_429_without_retry_after_is_a_quota_and_raised_at_once() -> None:
    script = Script(error(429, "quota_exceeded", "the team has 4 active jobs", {"limit": 4}))
    with pytest.raises(QuotaExceeded) as raised:
        script.client().jobs.get(JOB["id"])
    assert (raised.value.code, raised.value.details) == ("quota_exceeded", {"limit": 4})
    assert len(script.requests) == 1 and script.waits == []


def test_a_wait_longer_than_the_cap_is_not_waited_for() -> None:
    script = Script(error(503, "maintenance", "down for an hour", **{"Retry-After": "3600"}))
    with pytest.raises(ServiceUnavailable):
        script.client(max_retry_after_s=60).jobs.get(JOB["id"])
    assert script.waits == []


def test_a_500_is_retried_for_a_read_but_not_for_a_post_that_may_have_done_work() -> None:
    read = Script(error(500, "internal_error", "bug"), httpx.Response(200, json=JOB))
    read.client().jobs.get(JOB["id"])
    assert len(read.requests) == 2 and len(read.waits) == 1

    create_team = Script(error(500, "internal_error", "bug"))
    with pytest.raises(ServerError) as raised:
        create_team.client().teams.create("research")
    assert raised.value.status_code == 500 and len(create_team.requests) == 1


def test_a_job_submission_is_retried_with_the_same_idempotency_key() -> None:
    script = Script(
        httpx.ReadTimeout("the answer was lost"),
        error(502, "http_error", "bad gateway"),
        httpx.Response(201, json=JOB),
    )
    script.client().jobs.create({"base_model": "minilm", "train_dataset_id": JOB["id"]})
    keys = [request.headers["Idempotency-Key"] for request in script.requests]
    assert len(keys) == 3 and len(set(keys)) == 1


def test_a_connection_that_never_opened_is_retried_even_for_a_post() -> None:
    answer = Script(
        httpx.ConnectError("connection refused"),
        httpx.Response(
            201,
            json={
                "id": JOB["id"],
                "name": "research",
                "max_concurrent_jobs": None,
                "created_at": JOB["created_at"],
            },
        ),
    )
    team = answer.client().teams.create("research")
    assert team.name == "research" and len(answer.requests) == 2


def test_retries_end_with_a_typed_error_carrying_the_api_body() -> None:
    answers: list[httpx.Response | Exception] = [
        error(503, "transient", "the database is out of reach", {"service": "database"})
    ] * 4
    script = Script(*answers)
    with pytest.raises(ServiceUnavailable) as raised:
        script.client(max_retries=3).jobs.get(JOB["id"])
    exc = raised.value
    assert (exc.status_code, exc.code, exc.message, exc.details) == (
        503,
        "transient",
        "the database is out of reach",
        {"service": "database"},
    )
    assert len(script.requests) == 4 and len(script.waits) == 3
    # The wait grows between attempts (jittered doubling).
    assert script.waits[2] > script.waits[0]


def test_nothing_listening_is_api_unreachable_with_the_url() -> None:
    script = Script(*[httpx.ConnectError("[Errno 111] Connection refused")] * 4)
    with pytest.raises(ApiUnreachable) as raised:
        script.client().jobs.get(JOB["id"])
    assert raised.value.url == "http://temper.test"
    assert raised.value.code == "api_unreachable" and "connection refused" in raised.value.message


@pytest.mark.parametrize(
    ("answer", "expected_type", "code"),
    [
        (lambda: error(404, "not_found", "job x not found"), NotFound, "not_found"),
        (
            lambda: error(422, "invalid_input", "row 3: empty text", {"errors": [{"row": 3}]}),
            InvalidInput,
            "invalid_input",
        ),
        (lambda: httpx.Response(502, text="<html>bad gateway</html>"), ServerError, "http_error"),
    ],
)
def test_errors_are_typed_by_status(
    answer: Callable[[], httpx.Response], expected_type: type[Exception], code: str
) -> None:
    script = Script(*[answer()] * 4)
    with pytest.raises(expected_type) as raised:
        script.client(max_retries=0).jobs.get(JOB["id"])
    assert raised.value.code == code


def test_a_keep_alive_comment_between_events_is_not_an_event() -> None:
    """sse-starlette sends ": ping" every 15 s; the watch must skip it, not fail on it."""
    event = {
        "id": 7,
        "type": "transition",
        "from_status": "queued",
        "to_status": "cancelled",
        "message": None,
        "data": {},
        "created_at": JOB["created_at"],
    }
    stream = (
        f"id: 7\r\nevent: transition\r\ndata: {json.dumps(event)}\r\n\r\n"
        ": ping - 2026-11-02 10:00:15\r\n\r\n"
        'event: end\r\ndata: {"job_id": "x"}\r\n\r\n'
    )
    script = Script(
        httpx.Response(200, text=stream, headers={"content-type": "text/event-stream; charset=utf-8"})
    )
    assert [e.id for e in script.client().jobs.watch(JOB["id"])] == [7]
