"""What the OpenAPI document says beyond the route signatures: the error answers each operation may
give (all with the one error body), and the document's security scheme.

Routes list their 4xx with `errors(...)`; 401 and 429 come with every authenticated route. The
scope an operation needs is its security requirement (`bearerAuth: [read|write|admin]`, declared
by the route's ReadDep/WriteDep/AdminDep). The document is
checked in tests/api/test_openapi.py (unique operation ids, every 4xx with the error schema, a
response schema on every operation, examples on request bodies, and the 4xx that the API really
answers are the ones it documents).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.constants import REF_PREFIX

from services.api.schemas import ErrorResponse

_ERROR_REF = {"$ref": f"{REF_PREFIX}ErrorResponse"}
_REASONS = {
    400: "The request is malformed",
    401: "No API key, or an unknown or revoked one (send 'Authorization: Bearer <api key>')",
    403: "The API key lacks the scope this needs (details.required_scope: write or admin)",
    404: "No such object, or one that belongs to another team",
    409: "The object's state does not allow this",
    413: "The upload is over the server's limit (details.limit_bytes)",
    422: "A field, spec or file that cannot be used; details name the field or rows",
    429: "Too many requests with this key (retry after Retry-After seconds)",
    503: "A service the API depends on is out of reach; retry after Retry-After seconds",
}


def errors(*statuses: int, authenticated: bool = True) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry for an operation that may answer these statuses (401, and 429 for the
    per-key rate limit, included unless `authenticated` is False)."""
    wanted = sorted({*statuses, *((401, 429) if authenticated else ())})
    # The body is JSON whatever the route's own media type (a page, a file, an event stream), so
    # the content is spelled out rather than given as `model`, which FastAPI files under the
    # route's media type. install_openapi adds the ErrorResponse component it refers to.
    return {
        status: {"description": _REASONS[status], "content": {"application/json": {"schema": _ERROR_REF}}}
        for status in wanted
    }


def json_document(description: str) -> dict[int | str, dict[str, Any]]:
    """A 200 answer that is a free-form JSON document, for routes that return a stored file."""
    return {
        200: {
            "description": description,
            "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
        }
    }


def text_answer(media_type: str, description: str, binary: bool = False) -> dict[int | str, dict[str, Any]]:
    """A 200 answer that is not JSON: a page, a file, an event stream, Prometheus' text format."""
    schema: dict[str, Any] = {"type": "string", **({"format": "binary"} if binary else {})}
    return {200: {"description": description, "content": {media_type: {"schema": schema}}}}


def install_openapi(app: FastAPI) -> None:
    """Serve the document with the error body's schema, and FastAPI's own validation-error schema
    replaced by it.

    FastAPI documents a 422 with its `HTTPValidationError` on every operation that has parameters
    and no 422 of its own; the API never sends that shape (services/api/errors.py renders every
    validation failure as the error body), so the document must not promise it.
    """

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI caches the document it generates; the change below is made in place and can be
        # made again, so a regenerated document gets it too.
        return _without_fastapi_validation_error(generate())

    app.openapi = openapi  # type: ignore[method-assign]


def _without_fastapi_validation_error(document: dict[str, Any]) -> dict[str, Any]:
    fastapi_ref = f"{REF_PREFIX}HTTPValidationError"
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422")
            if answer is None:
                continue
            schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref") == fastapi_ref:
                answer["description"] = _REASONS[422]
                answer["content"]["application/json"]["schema"] = dict(_ERROR_REF)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    error_schema = ErrorResponse.model_json_schema(ref_template=f"{REF_PREFIX}{{model}}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorResponse"] = error_schema
    return document
