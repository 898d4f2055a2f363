"""`client.models`: published models, their versions, promote and rollback, predict and generate."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator, Sequence
from typing import Any

from temper_client._http import HttpSession, iter_sse
from temper_client.types import (
    ChatMessage,
    Generation,
    GenerationEnd,
    GenerationToken,
    ModelDetail,
    ModelVersion,
    PredictResult,
    RegisteredModel,
)


class Models:
    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def list(self) -> list[RegisteredModel]:
        return [RegisteredModel.model_validate(item) for item in self._http.json("GET", "/v1/models")]

    def get(self, name: str) -> ModelDetail:
        return ModelDetail.model_validate(self._http.json("GET", f"/v1/models/{name}"))

    def versions(self, name: str) -> builtins.list[ModelVersion]:
        data = self._http.json("GET", f"/v1/models/{name}/versions")
        return [ModelVersion.model_validate(item) for item in data]

    def promote(self, name: str, version: int) -> RegisteredModel:
        """Make `version` the production version (Triton loads it)."""
        data = self._http.json("POST", f"/v1/models/{name}/versions/{version}/promote", idempotent=True)
        return RegisteredModel.model_validate(data)

    def rollback(self, name: str) -> RegisteredModel:
        """Back to the previous production version; `Conflict` when there is none."""
        return RegisteredModel.model_validate(self._http.json("POST", f"/v1/models/{name}/rollback"))

    def predict(self, name: str, texts: Sequence[str], *, version: int | None = None) -> PredictResult:
        """Classify texts with a published classifier (the production version unless `version`)."""
        body: dict[str, Any] = {"texts": list(texts)}
        if version is not None:
            body["version"] = version
        data = self._http.json("POST", f"/v1/models/{name}/predict", json=body, idempotent=True)
        return PredictResult.model_validate(data)

    def generate(
        self,
        name: str,
        prompt: str | None = None,
        *,
        messages: Sequence[ChatMessage | dict[str, str]] | None = None,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
    ) -> Generation:
        """Generate an answer with a published causal LM, from a `prompt` or chat `messages`."""
        body = _generate_body(prompt, messages, max_new_tokens, temperature, stream=False)
        data = self._http.json("POST", f"/v1/models/{name}/generate", json=body, idempotent=True)
        return Generation.model_validate(data)

    def generate_stream(
        self,
        name: str,
        prompt: str | None = None,
        *,
        messages: Sequence[ChatMessage | dict[str, str]] | None = None,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
    ) -> Iterator[GenerationToken | GenerationEnd]:
        """The answer as it is generated: `GenerationToken`s, then one `GenerationEnd`.

        A stream cut halfway is not resumed (a generation cannot be continued where it stopped):
        the error is raised and the caller decides whether to ask again.
        """
        body = _generate_body(prompt, messages, max_new_tokens, temperature, stream=True)
        with self._http.stream("POST", f"/v1/models/{name}/generate", json=body, idempotent=True) as response:
            for message in iter_sse(response):
                data = json.loads(message.data) if message.data else {}
                if message.event == "token":
                    yield GenerationToken.model_validate(data)
                elif message.event == "end":
                    yield GenerationEnd.model_validate(data)
                    return


def _generate_body(
    prompt: str | None,
    messages: Sequence[ChatMessage | dict[str, str]] | None,
    max_new_tokens: int,
    temperature: float,
    stream: bool,
) -> dict[str, Any]:
    if (prompt is None) == (messages is None):
        raise ValueError("pass either a prompt or messages")
    chat = (
        None
        if messages is None
        else [
            ChatMessage.model_validate(message).model_dump(include={"role", "content"})
            for message in messages
        ]
    )
    return {
        "prompt": prompt,
        "messages": chat,
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "stream": stream,
    }
