"""One error hierarchy for the whole project, and the one place that says what is worth retrying.

The API renders every `TemperError` as `{"error": {"code", "message", "details"}}` with its HTTP
status; workers record `code` and `message` on the failed job. Anything else reaching the top is a
bug and answers 500.

A stage failure is either transient (`TransientError`: the store, the broker or the database was
briefly out of reach; the stage is retried with backoff up to a cap, then the job fails with
`transient_exhausted`) or permanent (`StageError` and its kin: bad data, a bad spec, a model that
cannot be loaded; recorded on the job with its own code, never retried). `shared.failures` maps
what third-party libraries raise onto this hierarchy.
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

    def headers(self) -> dict[str, str]:
        """HTTP headers the API sends with this error (none unless a subclass says so)."""
        return {}

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


class RateLimited(TemperError):
    """Too many requests with one API key: the answer says when to come back (`Retry-After`)."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class ServiceUnavailable(TemperError):
    status_code = 503
    code = "service_unavailable"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class StageError(TemperError):
    """A pipeline stage failed for a reason the user can act on (recorded on the job, not retried)."""

    code = "stage_failed"


class InvalidDataset(StageError):
    """The job's rows cannot train this model (labels, splits, a file that no longer validates)."""

    code = "invalid_dataset"


class InvalidSpec(StageError):
    """The spec asks for something this model or worker cannot do (found only when the stage ran)."""

    code = "invalid_spec"


class ModelUnavailable(StageError):
    """The base model's (or a baseline's) weights cannot be found or loaded."""

    code = "base_model_unavailable"


class UnsupportedModel(StageError):
    """The base model's architecture does not fit the requested method."""

    code = "unsupported_model"


class TransientError(TemperError):
    """A failure worth retrying: the store, the broker or the database is briefly out of reach."""

    status_code = 503
    code = "transient"


class InternalError(TemperError):
    """A bug: recorded on the job so that nobody waits for it, and logged with its traceback."""

    status_code = 500
    code = "internal_error"
