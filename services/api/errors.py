"""Every error answers `{"error": {"code", "message", "details"}}`; anything unexpected is a 500."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import TemperError, TransientError
from shared.failures import classify_failure
from shared.storage.errors import InvalidKey

log = structlog.get_logger(__name__)


def _body(code: str, message: str, details: object = None) -> dict:
    error: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TemperError)
    async def _temper_error(_: Request, exc: TemperError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code, content={"error": exc.to_dict()}, headers=exc.headers() or None
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = []
        for error in exc.errors():
            location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
            fields.append({"field": ".".join(location) or None, "reason": error.get("msg")})
        first = fields[0] if fields else {"field": None, "reason": "invalid request"}
        message = f"{first['field']}: {first['reason']}" if first["field"] else str(first["reason"])
        return JSONResponse(status_code=422, content=_body("invalid_input", message, {"errors": fields}))

    @app.exception_handler(InvalidKey)
    async def _invalid_key(_: Request, exc: InvalidKey) -> JSONResponse:
        # An object key built from what a client sent (a file path): the client's mistake, not ours.
        return JSONResponse(
            status_code=422, content=_body("invalid_input", f"the path cannot name a file: {exc.reason}")
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(status_code=exc.status_code, content=_body(code, str(exc.detail)))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        failure = classify_failure(exc)
        if isinstance(failure, TransientError):
            # The database or the broker is briefly out of reach: the client may retry.
            log.warning(
                "service unavailable", path=request.url.path, code=failure.code, error=failure.message
            )
            return JSONResponse(
                status_code=503,
                headers={"Retry-After": "5"},
                content=_body(failure.code, "a service Temper depends on is out of reach; retry shortly"),
            )
        log.exception("unhandled error", path=request.url.path)
        return JSONResponse(
            status_code=500, content=_body("internal_error", "an unexpected error; it is logged")
        )
