"""The OpenAPI document is one a client generator can use, and it tells the truth about errors.

Checked on the document the app serves: valid OpenAPI 3.1; unique, readable operation ids; the
bearer scheme on every /v1 operation; every 4xx with the API's error body; a response schema on
every operation; examples on request bodies that validate against their own schema; no anonymous
object where a named model fits. Then against the running app: every 4xx it actually answers to
a request without a key, with a team key on admin routes, and with unknown or malformed ids, is
one the document lists for that operation.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from services.api.main import create_app
from shared.settings import Settings
from tests.support.stack import Stack, running_stack

ERROR_REF = "#/components/schemas/ErrorResponse"
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Settings(environment="test")).openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_operation_ids_are_unique_and_readable(document: dict[str, Any]) -> None:
    ids = [operation.get("operationId") for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    unreadable = [i for i in ids if not re.fullmatch(r"[a-z]+(_[a-z]+)+", i or "")]
    assert unreadable == [], "give these routes an operation_id like 'jobs_create'"
    assert {"jobs_create", "jobs_get", "jobs_list", "datasets_upload", "keys_revoke"} <= set(ids)


def test_every_v1_operation_needs_the_bearer_key_with_one_scope(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, method, operation in operations(document):
        if path.startswith("/v1/"):
            security = operation.get("security")
            assert security is not None and len(security) == 1, (method, path)
            assert list(security[0]) == ["bearerAuth"], (method, path)
            assert security[0]["bearerAuth"] in (["read"], ["write"], ["admin"]), (method, path)
            assert {"401", "429"} <= set(operation["responses"]), (method, path)
            if security[0]["bearerAuth"] != ["read"]:
                assert "403" in operation["responses"], (method, path)


def test_every_4xx_is_documented_with_the_error_body(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        answers = operation["responses"]
        if path.startswith("/v1/"):
            assert any(status.startswith("4") for status in answers), (method, path)
        for status, answer in answers.items():
            if status.startswith("4"):
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, (method, path, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    error = document["components"]["schemas"]["ErrorDetail"]
    assert set(error["properties"]) == {"code", "message", "details"}


def test_every_operation_has_a_response_schema(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        successes = {s: a for s, a in operation["responses"].items() if s.startswith("2")}
        assert successes, (method, path)
        for status, answer in successes.items():
            if status == "204":
                continue
            content = answer.get("content")
            assert content, (method, path, status)
            for media_type, body in content.items():
                assert body.get("schema"), (method, path, status, media_type)


def test_request_bodies_have_examples_that_fit_their_schema(document: dict[str, Any]) -> None:
    component_schemas = document["components"]["schemas"]
    checked = 0
    for path, method, operation in operations(document):
        body = operation.get("requestBody")
        if body is None:
            continue
        content = body["content"]
        if "multipart/form-data" in content:
            form = component_schemas[content["multipart/form-data"]["schema"]["$ref"].split("/")[-1]]
            for name, field in form["properties"].items():
                assert field.get("examples") or "contentMediaType" in field, (path, name)
            continue
        reference = content["application/json"]["schema"]["$ref"]
        examples = component_schemas[reference.split("/")[-1]].get("examples")
        assert examples, f"{method} {path}: add examples to {reference}"
        validator = Draft202012Validator(
            {"$ref": reference, "components": document["components"]},
        )
        for example in examples:
            problems = [error.message for error in validator.iter_errors(example)]
            assert problems == [], (method, path, problems)
            checked += 1
    assert checked >= 6


def test_no_anonymous_object_where_a_named_model_fits(document: dict[str, Any]) -> None:
    """An object with declared properties is a component; operations refer to it by name."""

    def walk(node: Any, where: str) -> Iterator[str]:
        if isinstance(node, dict):
            if "properties" in node:
                yield where
            for key, value in node.items():
                yield from walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(value, f"{where}/{index}")

    assert list(walk(document["paths"], "paths")) == []
    for name, schema in document["components"]["schemas"].items():
        # A component's own properties are its fields; a field that declares properties is inline.
        inline = [
            where
            for field, field_schema in schema.get("properties", {}).items()
            for where in walk(field_schema, f"{name}.{field}")
        ]
        inline += [
            where for key, value in schema.items() if key != "properties" for where in walk(value, name)
        ]
        assert inline == [], inline


# The running app: the 4xx it really answers are the ones documented ----------------------------


@pytest.fixture
def stack(embedded_settings: Settings) -> Iterator[Stack]:
    # The walk sends every operation without a key from one address: the per-address limit on
    # failed authentications (tests/api/test_auth_failures.py) would answer 429 after its burst.
    settings = embedded_settings.model_copy(update={"auth_failures_per_minute": 0})
    with running_stack(settings, with_worker=False) as running:
        yield running


def _fill(path: str, ids: str) -> str:
    values = {"name": "no-such-model", "version": "1", "path": "model/config.json"}
    return re.sub(r"\{(\w+)(:path)?\}", lambda m: values.get(m.group(1), ids), path)


def test_the_4xx_the_api_answers_are_the_documented_ones(stack: Stack) -> None:
    document = stack.client.app.openapi()
    _, team_key = stack.new_team()
    seen: set[str] = set()
    for path, method, operation in operations(document):
        if not path.startswith("/v1/"):
            continue
        documented = set(operation["responses"])
        attempts = [
            ("no key", {}, str(uuid.uuid4())),
            ("team key", stack.headers(team_key), str(uuid.uuid4())),
            ("admin key", stack.headers(), str(uuid.uuid4())),
            ("malformed id", stack.headers(), "not-a-uuid"),
        ]
        for what, headers, ids in attempts:
            kwargs: dict[str, Any] = {"headers": headers}
            if method in ("post", "put", "patch") and "requestBody" in operation:
                kwargs["json"] = {}
            response = stack.client.request(method.upper(), _fill(path, ids), **kwargs)
            if 400 <= response.status_code < 500:
                status = str(response.status_code)
                assert status in documented, (what, method, path, status, response.text)
                error = response.json()["error"]
                assert isinstance(error["code"], str) and isinstance(error["message"], str)
                seen.add(status)
            if what == "no key":
                assert response.status_code == 401, (method, path)
    assert {"401", "403", "404", "422"} <= seen
