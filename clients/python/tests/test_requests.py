"""What the SDK sends and how it reads what comes back, without a server: headers and identity,
defaults from the environment, query parameters, page after page, and server-sent events.

httpx.MockTransport stands in for the API (see scripted.py); the same calls against the real API
are in the server's suite (tests/client/test_sdk_against_api.py).
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
from scripted import JOB, Script, sse

import temper_client
from temper_client import Temper
from temper_client.types import GenerationEnd, GenerationToken

EVENT = {
    "type": "transition",
    "from_status": "queued",
    "to_status": "validating",
    "message": None,
    "data": {},
    "created_at": "2026-11-02T10:00:01Z",
}


def job(number: int) -> dict[str, object]:
    return {**JOB, "id": f"8b1f4c3e-0d5a-4c47-9a3f-{number:012d}"}


def event(event_id: int) -> dict[str, object]:
    return {**EVENT, "id": event_id}


def test_every_request_names_the_sdk_and_its_version_and_carries_the_key() -> None:
    script = Script(httpx.Response(200, json=JOB))
    script.client(api_key="tmp_team_key").jobs.get(JOB["id"])
    sent = script.requests[0]
    assert sent.headers["User-Agent"] == f"temper-client/{temper_client.__version__}"
    assert sent.headers["Authorization"] == "Bearer tmp_team_key"
    # The version in the header is the one the installed distribution says it is.
    assert temper_client.__version__ == version("temper-client")


def test_no_key_sends_no_authorization_header() -> None:
    script = Script(httpx.Response(200, json={"status": "ok"}))
    assert script.client(api_key=None).health()
    assert "Authorization" not in script.requests[0].headers


def test_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPER_API_URL", "http://temper.internal:9000/")
    monkeypatch.setenv("TEMPER_API_KEY", "tmp_env_key")
    script = Script(httpx.Response(200, json=JOB))
    with Temper(transport=httpx.MockTransport(script)) as temper:
        temper.jobs.get(JOB["id"])
        assert temper.base_url == "http://temper.internal:9000"
    sent = script.requests[0]
    assert str(sent.url) == f"http://temper.internal:9000/v1/jobs/{JOB['id']}"
    assert sent.headers["Authorization"] == "Bearer tmp_env_key"


def test_jobs_list_follows_the_cursor_to_the_last_page_and_leaves_unset_filters_out() -> None:
    script = Script(
        httpx.Response(200, json={"items": [job(1), job(2)], "next_cursor": "c2"}),
        httpx.Response(200, json={"items": [job(3)], "next_cursor": None}),
    )
    ids = [
        str(found.id)[-2:] for found in script.client().jobs.list(status=["failed", "cancelled"], page_size=2)
    ]
    assert ids == ["01", "02", "03"]
    first, second = (request.url.params for request in script.requests)
    assert first.get_list("status") == ["failed", "cancelled"] and first["limit"] == "2"
    assert "cursor" not in first
    assert second["cursor"] == "c2"


def test_jobs_list_fetches_the_next_page_only_when_the_iteration_gets_there() -> None:
    script = Script(
        httpx.Response(200, json={"items": [job(1)], "next_cursor": "c2"}),
        httpx.Response(200, json={"items": [job(2)], "next_cursor": None}),
    )
    pages = script.client().jobs.list()
    next(pages)
    assert len(script.requests) == 1


def test_events_page_by_their_ids() -> None:
    script = Script(
        httpx.Response(200, json={"items": [event(1), event(2)], "next_after": 2}),
        httpx.Response(200, json={"items": [event(3)], "next_after": None}),
    )
    events = list(script.client().jobs.events(JOB["id"], type="transition", page_size=2))
    assert [found.id for found in events] == [1, 2, 3]
    assert [request.url.params["after"] for request in script.requests] == ["0", "2"]
    assert script.requests[0].url.params["type"] == "transition"


def test_watch_reopens_a_dropped_stream_from_the_last_event_without_repeating_one() -> None:
    script = Script(
        sse(("transition", json.dumps(event(1)), "1"), ("transition", json.dumps(event(2)), "2")),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        sse(("transition", json.dumps(event(3)), "3"), ("end", json.dumps({"job_id": JOB["id"]}), None)),
    )
    seen = [found.id for found in script.client().jobs.watch(JOB["id"])]
    assert seen == [1, 2, 3]
    reopened = script.requests[-1]
    assert reopened.headers["Last-Event-ID"] == "2" and reopened.url.params["after"] == "2"
    assert "Last-Event-ID" not in script.requests[0].headers


def test_generate_stream_yields_tokens_then_the_end_and_skips_keep_alives() -> None:
    stream = (
        'event: token\r\ndata: {"text": "Your "}\r\n\r\n'
        ": ping - 2026-11-02 10:00:15\r\n\r\n"
        'event: token\r\ndata: {"text": "parcel."}\r\n\r\n'
        'event: end\r\ndata: {"finish_reason": "eos", "tokens": 2}\r\n\r\n'
    )
    script = Script(httpx.Response(200, text=stream, headers={"content-type": "text/event-stream"}))
    pieces = list(
        script.client().models.generate_stream("assistant", "Where is my parcel?", max_new_tokens=8)
    )
    assert pieces == [
        GenerationToken(text="Your "),
        GenerationToken(text="parcel."),
        GenerationEnd(finish_reason="eos", tokens=2),
    ]
    body = json.loads(script.requests[0].content)
    assert body == {
        "prompt": "Where is my parcel?",
        "messages": None,
        "max_new_tokens": 8,
        "temperature": 0.0,
        "stream": True,
    }


def test_generate_needs_a_prompt_or_messages_and_refuses_both_before_sending() -> None:
    script = Script()
    client = script.client()
    with pytest.raises(ValueError, match="either a prompt or messages"):
        client.models.generate("assistant")
    with pytest.raises(ValueError, match="either a prompt or messages"):
        client.models.generate("assistant", "hi", messages=[{"role": "user", "content": "hi"}])
    assert script.requests == []


def test_an_upload_is_multipart_with_the_column_mapping_and_reports_progress(tmp_path: Path) -> None:
    rows = tmp_path / "tickets.jsonl"
    rows.write_text(
        "".join(json.dumps({"text": f"ticket {n}", "label": "billing"}) + "\n" for n in range(200))
    )
    dataset = {
        "id": JOB["id"],
        "name": "tickets",
        "task": "text-classification",
        "format": "jsonl",
        "filename": "tickets.jsonl",
        "sha256": "0" * 64,
        "size_bytes": rows.stat().st_size,
        "row_count": 200,
        "labels": ["billing"],
        "column_mapping": {"text": "body"},
        "report": {},
        "created_at": JOB["created_at"],
    }
    script = Script(httpx.Response(201, json=dataset))
    progress: list[tuple[int, int]] = []
    uploaded = script.client().datasets.upload(
        rows,
        name="tickets",
        text_column="body",
        on_progress=lambda sent, total: progress.append((sent, total)),
    )
    assert uploaded.row_count == 200
    sent = script.requests[0]
    assert sent.headers["content-type"].startswith("multipart/form-data")
    content = sent.read()
    assert b'name="text_column"\r\n\r\nbody' in content and b'filename="tickets.jsonl"' in content
    assert rows.read_bytes() in content
    assert progress[-1] == (rows.stat().st_size, rows.stat().st_size)
