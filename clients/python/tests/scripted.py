"""Scripted answers for the SDK's own tests: httpx.MockTransport stands in for the Temper API, so
that each answer (an error, a Retry-After, a dropped connection, a second page) comes on demand
and no server is needed. The tests against the real API are in the server's suite (tests/client)."""

from __future__ import annotations

from typing import Any

import httpx

from temper_client import RetryPolicy, Temper

JOB: dict[str, Any] = {
    "id": "8b1f4c3e-0d5a-4c47-9a3f-2b6e1d7c9a10",
    "name": None,
    "status": "queued",
    "stage": None,
    "attempt": 0,
    "completed_stages": [],
    "progress": {},
    "latest_metrics": {},
    "error": None,
    "spec": {},
    "result": {},
    "created_at": "2026-11-02T10:00:00Z",
    "updated_at": "2026-11-02T10:00:00Z",
}


def error(status: int, code: str, message: str, details: object = None, **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": message, **({"details": details} if details else {})}}
    return httpx.Response(status, json=body, headers=headers)


def sse(*events: tuple[str, str, str | None]) -> httpx.Response:
    """A text/event-stream answer of (event, data, id) triples, framed as sse-starlette frames them."""
    frames = []
    for event, data, event_id in events:
        frame = (
            f"id: {event_id}\r\n" if event_id is not None else ""
        ) + f"event: {event}\r\ndata: {data}\r\n\r\n"
        frames.append(frame)
    return httpx.Response(
        200, text="".join(frames), headers={"content-type": "text/event-stream; charset=utf-8"}
    )


class Script:
    """Answers in order, and what was asked."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.waits: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self, api_key: str | None = "tmp_test_key", **retry: Any) -> Temper:
        return Temper(
            "http://temper.test",
            api_key,
            transport=httpx.MockTransport(self),
            retry=RetryPolicy(**retry),
            sleep=self.waits.append,
        )
