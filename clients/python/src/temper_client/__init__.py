"""Temper's Python client: typed access to the REST API, the one the `temper` CLI is built on.

    from temper_client import Temper, NotFound

It needs httpx, httpx-sse and pydantic only, and imports nothing of the server.
"""

from __future__ import annotations

__version__ = "0.1.0"

from temper_client._http import DEFAULT_API_URL, RetryPolicy
from temper_client.client import Temper
from temper_client.errors import (
    ApiError,
    ApiUnreachable,
    BadRequest,
    Conflict,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    ServerError,
    ServiceUnavailable,
    TemperError,
    UnsupportedMediaType,
)
from temper_client.webhooks import InvalidSignature, verify_signature

__all__ = [
    "DEFAULT_API_URL",
    "ApiError",
    "ApiUnreachable",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "InvalidSignature",
    "NotAuthenticated",
    "NotFound",
    "PayloadTooLarge",
    "QuotaExceeded",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailable",
    "Temper",
    "TemperError",
    "UnsupportedMediaType",
    "__version__",
    "verify_signature",
]
