"""What the SDK raises. Every error carries `code`, `message` and `details`, as the API sends them.

`TemperError` is the root; `ApiError` is an answer with an error status (its subclass says which);
`ApiUnreachable` is no answer at all (nothing listens at the URL, or the connection kept failing).
"""

from __future__ import annotations

from typing import Any


class TemperError(Exception):
    """Any failure of a call to Temper."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"


class ApiUnreachable(TemperError):
    """No HTTP answer from the API: connection refused, DNS failure, timeouts, dropped connections."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__("api_unreachable", f"cannot reach the Temper API at {url}: {reason}", {"url": url})
        self.url = url
        self.reason = reason


class ApiError(TemperError):
    """The API answered with an error status and the body `{"error": {"code", "message", "details"}}`."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: Any = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(code, message, details)
        self.status_code = status_code
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.message} ({self.code}, HTTP {self.status_code})"


class BadRequest(ApiError):
    """400: the request is malformed in a way no more specific status covers."""


class NotAuthenticated(ApiError):
    """401: no API key, or one that is unknown or revoked."""


class Forbidden(ApiError):
    """403: the key is valid but may not do this (an admin endpoint with a team key)."""


class NotFound(ApiError):
    """404: no such object, or one that belongs to another team."""


class Conflict(ApiError):
    """409: the object's state forbids this (a finished job, a taken name, a dataset in use)."""


class PayloadTooLarge(ApiError):
    """413: an upload over the server's limit; `details` says the limit."""


class UnsupportedMediaType(ApiError):
    """415: a file format the server does not read."""


class InvalidInput(ApiError):
    """422: a field, a spec or a file the server refuses; `details` names the field or rows."""


class QuotaExceeded(ApiError):
    """429: a team limit or rate limit; retried by the client when the server sends Retry-After."""


class ServerError(ApiError):
    """5xx: a failure on the server side (after the client's retries, where it retries)."""


class ServiceUnavailable(ServerError):
    """503: a service the API depends on is out of reach; worth retrying later."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: NotAuthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidInput,
    429: QuotaExceeded,
    503: ServiceUnavailable,
}


def error_for_status(status_code: int, body: Any, request_id: str | None = None) -> ApiError:
    """The typed error for an error answer; a body that is not Temper's shape still gives one."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or "http_error")
        message = str(error.get("message") or f"HTTP {status_code}")
        details = error.get("details")
    else:
        code, message, details = "http_error", f"HTTP {status_code}", body or None
    cls = _BY_STATUS.get(status_code) or (ServerError if status_code >= 500 else ApiError)
    return cls(status_code, code, message, details, request_id)
