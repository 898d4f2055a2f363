"""Trying a published causal LM: `POST /v1/models/{name}/generate`, whole or streamed (SSE).

Through Triton's decoupled generation model when Triton is configured, else through the same
generation core on the published repository files (the embedded default). Either way the model
renders the prompt with the chat template it was trained with and stops at its end of turn.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import iterate_in_threadpool

from services.api.deps import ReadDep, SessionDep, SettingsDep
from services.api.openapi import errors
from shared.errors import Conflict, InvalidInput, ServiceUnavailable
from shared.registry.service import RegistryService
from shared.text import MultilineText

router = APIRouter(prefix="/v1/models", tags=["models"])


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: MultilineText = Field(min_length=1, max_length=20_000)


class GenerateRequest(BaseModel):
    """One user turn (`prompt`) or a chat (`messages`), and how to decode the answer."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"prompt": "Name three primary colours.", "max_new_tokens": 64}]},
    )
    prompt: MultilineText | None = Field(None, min_length=1, max_length=20_000)
    messages: list[ChatMessage] | None = Field(None, min_length=1, max_length=64)
    # Default: the model's own (its config.pbtxt); at most its limit.
    max_new_tokens: int | None = Field(None, ge=1, le=4096)
    # 0 is greedy decoding; above 0, sampling at that temperature.
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    version: int | None = Field(None, ge=1, description="Default: the production version")
    stream: bool = Field(False, description="Answer as server-sent events: `token` chunks, then `end`")

    @model_validator(mode="after")
    def _one_input(self) -> GenerateRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("send exactly one of 'prompt' (one user turn) or 'messages' (a chat)")
        return self

    def fields(self) -> dict[str, Any]:
        """The request as the generation core reads it (unset options left to the model)."""
        fields: dict[str, Any] = {"temperature": self.temperature}
        if self.prompt is not None:
            fields["prompt"] = self.prompt
        else:
            fields["messages"] = [message.model_dump() for message in self.messages or []]
        if self.max_new_tokens is not None:
            fields["max_new_tokens"] = self.max_new_tokens
        if self.seed is not None:
            fields["seed"] = self.seed
        return fields


class Generation(BaseModel):
    """A whole generated answer."""

    model: str
    version: int
    text: str
    # "eos" (the model ended its turn), "length" (max_new_tokens reached) or "stop".
    finish_reason: str | None = None
    # Tokens generated (the end-of-turn token not counted), where the serving path counts them.
    tokens: int | None = None


@router.post(
    "/{name}/generate",
    operation_id="models_generate",
    response_model=Generation,
    responses={
        200: {
            "description": "The answer; with `stream: true`, server-sent events instead: `token` events "
            '(`data: {"text": ...}`) as it is generated, then one `end` event (`data: {"finish_reason", "tokens"}`)',
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **errors(404, 409, 422, 503),
    },
)
def generate(
    name: str,
    body: GenerateRequest,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: ReadDep,
) -> Any:
    """Generate an answer with a published causal LM (the production version unless one is named)."""
    service = RegistryService(session)
    model = service.get_model(principal.team_id, name)
    if model.task != "causal-lm":
        raise InvalidInput(
            f"model '{name}' is a {model.task} model; classify with POST /v1/models/{name}/predict",
            details={"field": "name"},
        )
    version = body.version or model.production_version
    if version is None:
        raise Conflict(f"model '{name}' has no production version; promote one or pass a version")
    service.get_version(principal.team_id, name, version)
    chunks = _chunks(request, settings.triton_url, model.repository_name, version, body)
    if body.stream:
        return EventSourceResponse(iterate_in_threadpool(_events(chunks)))
    text, finish_reason, tokens = [], None, None
    for chunk in chunks:
        text.append(chunk["text"])
        finish_reason, tokens = chunk.get("finish_reason") or finish_reason, chunk.get("tokens", tokens)
    return Generation(
        model=name, version=version, text="".join(text), finish_reason=finish_reason, tokens=tokens
    )


def _chunks(
    request: Request, triton_url: str | None, repository_name: str, version: int, body: GenerateRequest
) -> Iterator[dict[str, Any]]:
    """The answer's chunks as plain dicts; a bad request is refused here, before any streaming."""
    fields = body.fields()
    if triton_url:
        from shared.client.triton import ServingUnavailable, TemperClient

        client = TemperClient(triton_url, repository_name, str(version))
        options = {key: value for key, value in fields.items() if key not in ("prompt", "messages")}
        stream = client.generate_stream(fields.get("messages"), prompt=fields.get("prompt"), **options)

        def from_triton() -> Iterator[dict[str, Any]]:
            try:
                for chunk in stream:
                    yield {"text": chunk.text, "finish_reason": chunk.finish_reason}
            except ServingUnavailable as exc:
                raise ServiceUnavailable(f"Triton did not answer: {exc}") from exc

        return from_triton()
    runner = request.app.state.generation_runners.get(
        repository_name, version, request.app.state.model_repository
    )
    parsed = runner.parse(fields)
    return (
        {"text": chunk.text, "finish_reason": chunk.finish_reason, "tokens": chunk.tokens}
        for chunk in runner.stream(parsed)
    )


def _events(chunks: Iterator[dict[str, Any]]) -> Iterator[dict[str, str]]:
    finish_reason, tokens = None, None
    for chunk in chunks:
        if chunk["text"]:
            yield {"event": "token", "data": json.dumps({"text": chunk["text"]})}
        finish_reason, tokens = chunk.get("finish_reason") or finish_reason, chunk.get("tokens", tokens)
    yield {"event": "end", "data": json.dumps({"finish_reason": finish_reason, "tokens": tokens})}
