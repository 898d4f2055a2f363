"""The HTTP layer under every resource: one httpx client, typed errors, and the retry policy.

What is retried, and why it is safe:
- a connection that could not be opened (nothing was sent), for every request;
- 503, and 429 when the server says when to come back (`Retry-After`): the server refused the
  request before doing anything, for every request;
- 500/502/504 and a connection lost mid-request, only for requests that are safe to repeat: GET,
  HEAD, PUT, DELETE, and a POST marked idempotent (a job submission carries an Idempotency-Key).
A 429 without `Retry-After` is a quota (too many active jobs): waiting seconds will not clear it.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from httpx_sse import EventSource, ServerSentEvent

from temper_client.errors import ApiError, ApiUnreachable, error_for_status

DEFAULT_API_URL = "http://127.0.0.1:8000"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Seconds; reading is generous because an upload is validated before the server answers.
DEFAULT_TIMEOUT = httpx.Timeout(300.0, connect=5.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait. The wait doubles from `backoff_s` up to `max_backoff_s`
    (with jitter), unless the server sent `Retry-After`; one over `max_retry_after_s` is not waited
    for: the error is raised at once."""

    max_retries: int = 3
    backoff_s: float = 0.25
    max_backoff_s: float = 8.0
    max_retry_after_s: float = 60.0

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.max_backoff_s, self.backoff_s * 2.0**attempt)
        return ceiling * (0.5 + random.random() / 2)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The server's `Retry-After`, as seconds from now (it may be a number or an HTTP date)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class HttpSession:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),
        transport: httpx.BaseTransport | None = None,
        user_agent: str = "temper-client",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.sleep = sleep
        headers = {"User-Agent": user_agent}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self.client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        accept_statuses: frozenset[int] = frozenset(),
        retry: RetryPolicy | None = None,
    ) -> httpx.Response:
        """Send with retries; return a success (or an accepted status), raise a typed error."""
        request = self.client.build_request(
            method, path, params=_clean(params), json=json, data=data, files=files, headers=headers
        )
        repeatable = idempotent if idempotent is not None else method.upper() in IDEMPOTENT_METHODS
        policy = retry or self.retry
        attempt = 0
        while True:
            try:
                response = self.client.send(request)
            except httpx.TransportError as exc:
                if attempt < policy.max_retries and _may_retry_transport(exc, repeatable):
                    self.sleep(policy.backoff(attempt))
                    attempt += 1
                    continue
                raise ApiUnreachable(self.base_url, _describe(exc)) from exc
            if response.status_code < 400 or response.status_code in accept_statuses:
                return response
            wait = self._retry_wait(response, repeatable, attempt, policy)
            if wait is None:
                raise self._error(response)
            response.close()
            self.sleep(wait)
            attempt += 1

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        timeout: httpx.Timeout | float | None = None,
    ) -> Iterator[httpx.Response]:
        """A streamed answer, opened with the same retries; the body is read by the caller."""
        request = self.client.build_request(
            method, path, params=_clean(params), json=json, headers=headers, timeout=timeout
        )
        repeatable = idempotent if idempotent is not None else method.upper() in IDEMPOTENT_METHODS
        attempt = 0
        while True:
            try:
                response = self.client.send(request, stream=True)
            except httpx.TransportError as exc:
                if attempt < self.retry.max_retries and _may_retry_transport(exc, repeatable):
                    self.sleep(self.retry.backoff(attempt))
                    attempt += 1
                    continue
                raise ApiUnreachable(self.base_url, _describe(exc)) from exc
            if response.status_code < 400:
                break
            response.read()
            response.close()
            wait = self._retry_wait(response, repeatable, attempt, self.retry)
            if wait is None:
                raise self._error(response)
            self.sleep(wait)
            attempt += 1
        try:
            yield response
        finally:
            response.close()

    def _retry_wait(
        self, response: httpx.Response, repeatable: bool, attempt: int, policy: RetryPolicy
    ) -> float | None:
        """Seconds to wait before trying again, or None when this answer is final."""
        if attempt >= policy.max_retries:
            return None
        status = response.status_code
        retry_after = retry_after_seconds(response)
        if status == 429 and retry_after is None:
            return None
        if status not in (429, 503) and not (repeatable and status in (500, 502, 504)):
            return None
        if retry_after is None:
            return policy.backoff(attempt)
        return retry_after if retry_after <= policy.max_retry_after_s else None

    def _error(self, response: httpx.Response) -> ApiError:
        if not response.is_stream_consumed:
            response.read()
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text.strip() or None
        return error_for_status(response.status_code, body, response.headers.get("x-request-id"))


def iter_sse(response: httpx.Response) -> Iterator[ServerSentEvent]:
    """Server-sent events of a streamed answer, as they arrive.

    An event with no data is not one: the SSE specification drops it. httpx-sse hands one over for
    the blank line after a keep-alive comment (": ping") once an event id has been seen.
    """
    for event in EventSource(response).iter_sse():
        if event.data:
            yield event


def _may_retry_transport(exc: httpx.TransportError, repeatable: bool) -> bool:
    # A connection that never opened carried nothing: any request may be sent again.
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return True
    return repeatable and isinstance(
        exc, httpx.NetworkError | httpx.TimeoutException | httpx.RemoteProtocolError
    )


def _describe(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        text = str(exc)
        if "refused" in text.lower():
            return "connection refused"
        return text or "cannot connect"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    return str(exc) or type(exc).__name__


def _clean(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters without the unset ones."""
    if params is None:
        return None
    return {key: value for key, value in params.items() if value is not None}
