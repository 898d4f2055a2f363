"""Which failures are worth retrying: third-party exceptions mapped onto `shared.errors`.

The one place that decides transient against permanent for what the database driver, the broker
client or the network raise. The stage runner, the task decorator and the API's error handler all
ask it, so a database hiccup is retried in a worker and answered 503 by the API, never recorded as
a bug.
"""

from __future__ import annotations

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc

from shared.errors import InternalError, TemperError, TransientError

_DATABASE_ERRORS = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    sqlalchemy.exc.DisconnectionError,
)
_BROKER_ERRORS = (
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def classify_failure(exc: BaseException) -> TemperError:
    """The project's error for `exc`: itself when it is one, transient for connection trouble
    with a service, internal (a bug) otherwise."""
    if isinstance(exc, TemperError):
        return exc
    described = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, _DATABASE_ERRORS) or (
        isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated
    ):
        return TransientError(f"the database is out of reach: {described}", code="database_unavailable")
    if isinstance(exc, _BROKER_ERRORS):
        return TransientError(f"the broker is out of reach: {described}", code="broker_unavailable")
    if isinstance(exc, ConnectionError | TimeoutError):
        return TransientError(f"a service is out of reach: {described}", code="connection_error")
    return InternalError(described)
