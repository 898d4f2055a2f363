"""`models.generate` / `models.generate_stream` and `temper generate` against the generate contract.

A small fake route serves the contract here, so that every answer shape (a limit reached, a 404, a
422) is quick to produce: a JSON answer `{"model", "version", "text", "finish_reason", "tokens"}`,
or with `stream: true` an SSE stream of `token` events (`{"text"}`) and one `end` event
(`{"finish_reason", "tokens"}`). The SDK and the CLI against the real route, on a model a job
fine-tuned and published, are in tests/e2e/test_instruction_tuning.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse
from typer.testing import CliRunner

from services.cli.main import app as cli
from temper_client import NotFound, Temper
from temper_client.types import GenerationEnd, GenerationToken
from tests.support.live_api import serve

ANSWER = ["Your ", "parcel ", "is ", "on ", "its ", "way."]


def fake_generate_api(received: list[dict[str, Any]]) -> FastAPI:
    api = FastAPI()

    @api.post("/v1/models/{name}/generate")
    async def generate(name: str, body: dict[str, Any]) -> Any:
        received.append(body)
        if name != "assistant":
            return JSONResponse(
                status_code=404,
                content={"error": {"code": "not_found", "message": f"model '{name}' not found"}},
            )
        if (body.get("prompt") is None) == (body.get("messages") is None):
            return JSONResponse(
                status_code=422,
                content={
                    "error": {
                        "code": "invalid_input",
                        "message": "send a prompt or messages",
                        "details": {"field": "prompt"},
                    }
                },
            )
        pieces = ANSWER[: body["max_new_tokens"]]
        reason = "stop" if len(pieces) == len(ANSWER) else "length"
        if not body["stream"]:
            return {
                "model": name,
                "version": 3,
                "text": "".join(pieces),
                "finish_reason": reason,
                "tokens": len(pieces),
            }

        async def events() -> AsyncIterator[dict[str, str]]:
            for piece in pieces:
                yield {"event": "token", "data": json.dumps({"text": piece})}
            yield {"event": "end", "data": json.dumps({"finish_reason": reason, "tokens": len(pieces)})}

        return EventSourceResponse(events())

    return api


@pytest.fixture
def received() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def api_url(received: list[dict[str, Any]]) -> Iterator[str]:
    with serve(fake_generate_api(received)) as url:
        yield url


def test_generate_returns_the_whole_answer(api_url: str, received: list[dict[str, Any]]) -> None:
    with Temper(api_url, "tmp_test_key") as temper:
        generation = temper.models.generate("assistant", "where is my parcel?", max_new_tokens=64)
    assert (generation.text, generation.finish_reason, generation.tokens, generation.version) == (
        "Your parcel is on its way.",
        "stop",
        6,
        3,
    )
    assert received == [
        {
            "prompt": "where is my parcel?",
            "messages": None,
            "max_new_tokens": 64,
            "temperature": 0.0,
            "stream": False,
        }
    ]


def test_generate_stream_yields_tokens_then_the_end(api_url: str, received: list[dict[str, Any]]) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "parcel?"}]
    with Temper(api_url, "tmp_test_key") as temper:
        events = list(temper.models.generate_stream("assistant", messages=messages, max_new_tokens=3))
    assert events[:-1] == [GenerationToken(text=piece) for piece in ANSWER[:3]]
    assert events[-1] == GenerationEnd(finish_reason="length", tokens=3)
    assert received[0]["messages"] == messages and received[0]["stream"] is True


def test_generate_errors_are_typed(api_url: str) -> None:
    with Temper(api_url, "tmp_test_key") as temper:
        with pytest.raises(NotFound):
            list(temper.models.generate_stream("nobody", "hello"))
        with pytest.raises(ValueError, match="either a prompt or messages"):
            temper.models.generate("assistant")


def test_the_cli_streams_the_answer_and_says_why_it_stopped(api_url: str) -> None:
    runner = CliRunner()
    env = {"TEMPER_API_URL": api_url, "TEMPER_API_KEY": "tmp_test_key"}
    streamed = runner.invoke(cli, ["generate", "assistant", "where is my parcel?"], env=env)
    assert streamed.exit_code == 0, streamed.output
    assert streamed.stdout == "Your parcel is on its way.\n"
    assert "stop, 6 tokens" in streamed.stderr

    whole = runner.invoke(
        cli, ["generate", "assistant", "hi", "--no-stream", "--max-new-tokens", "2", "--json"], env=env
    )
    assert json.loads(whole.stdout) == {
        "model": "assistant",
        "version": 3,
        "text": "Your parcel ",
        "finish_reason": "length",
        "tokens": 2,
    }

    missing = runner.invoke(cli, ["generate", "nobody", "hi"], env=env)
    assert missing.exit_code == 1
    assert missing.stderr.strip().splitlines()[0].endswith("model 'nobody' not found (not_found, HTTP 404)")
