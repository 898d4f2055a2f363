"""One error hierarchy for the whole project.

The API renders every `TemperError` as `{"error": {"code", "message", "details"}}` with its HTTP
status; workers record `code` and `message` on the failed job. Anything else reaching the top is a
bug and answers 500.
"""

from __future__ import annotations

from typing import Any


class TemperError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class NotAuthenticated(TemperError):
    status_code = 401
    code = "not_authenticated"


class Forbidden(TemperError):
    status_code = 403
    code = "forbidden"


class NotFound(TemperError):
    status_code = 404
    code = "not_found"


class Conflict(TemperError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(TemperError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMedia(TemperError):
    status_code = 415
    code = "unsupported_media_type"


class InvalidInput(TemperError):
    """A request or file that cannot be used as it is; `details` names the rows or fields."""

    status_code = 422
    code = "invalid_input"


class QuotaExceeded(TemperError):
    status_code = 429
    code = "quota_exceeded"


class ServiceUnavailable(TemperError):
    status_code = 503
    code = "service_unavailable"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class StageError(TemperError):
    """A pipeline stage failed for a reason the user can act on (recorded on the job, not retried)."""

    code = "stage_failed"


class TransientError(TemperError):
    """A failure worth retrying (store or database briefly unreachable)."""

    status_code = 503
    code = "transient"
