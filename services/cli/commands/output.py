"""What every API command shares: the client, `--json`, and how an expected failure is told.

Results go to stdout (tables and highlighted JSON for a person, plain JSON with `--json`);
progress bars and errors go to stderr. An expected failure prints one or two lines and exits
non-zero: 1 when the API refused the request, 3 when it could not be reached.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from typer.core import TyperGroup

from temper_client import ApiError, ApiUnreachable, Temper, TemperError

console = Console()
errors = Console(stderr=True)

EXIT_REFUSED = 1
EXIT_UNREACHABLE = 3
# How much of an error's details the second line shows; --json prints all of it.
MAX_DETAIL_CHARS = 300


@dataclass
class Connection:
    """Where the API is, from --api-url/--api-key or TEMPER_API_URL/TEMPER_API_KEY."""

    url: str | None = None
    key: str | None = None
    json_output: bool = False


connection = Connection()


def client() -> Temper:
    return Temper(base_url=connection.url, api_key=connection.key)


def _remember_json(value: bool) -> bool:
    # Errors are reported outside the command, by the group; it needs to know the format asked for.
    connection.json_output = connection.json_output or value
    return value


JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print the result as JSON (errors too, on stderr), for scripts.",
        callback=_remember_json,
    ),
]


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    return value


def print_json(value: Any) -> None:
    """Plain JSON on stdout: one document, no colour, no wrapping."""
    typer.echo(json.dumps(to_jsonable(value), ensure_ascii=False))


def print_json_lines(values: Iterable[Any]) -> None:
    for value in values:
        typer.echo(json.dumps(to_jsonable(value), ensure_ascii=False))


def show(value: Any) -> None:
    """A document for a person: highlighted JSON."""
    console.print_json(json.dumps(to_jsonable(value), ensure_ascii=False))


def report_failure(exc: TemperError) -> int:
    """Tell the user what failed in at most two lines on stderr; return the exit code."""
    if connection.json_output:
        body = {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}
        sys.stderr.write(json.dumps(body, ensure_ascii=False) + "\n")
    elif isinstance(exc, ApiUnreachable):
        errors.print(
            f"[red]error:[/red] cannot reach the Temper API at {exc.url} ({exc.reason})",
            highlight=False,
            soft_wrap=True,
        )
        errors.print(
            "start one with 'temper up', or set TEMPER_API_URL to where one runs",
            highlight=False,
            soft_wrap=True,
        )
    else:
        status = f", HTTP {exc.status_code}" if isinstance(exc, ApiError) else ""
        errors.print(f"[red]error:[/red] {exc.message} ({exc.code}{status})", highlight=False, soft_wrap=True)
        detail = _detail_line(exc.details) if exc.details is not None else ""
        # A lone field error repeats the message; say it once.
        if detail and detail.strip() not in exc.message:
            errors.print(detail, highlight=False, soft_wrap=True, markup=False)
    return EXIT_UNREACHABLE if isinstance(exc, ApiUnreachable) else EXIT_REFUSED


def _detail_line(details: Any) -> str:
    """One line: the first listed problems (rows or fields) when there is a list, else the JSON."""
    listed = details.get("errors") if isinstance(details, dict) else None
    if isinstance(listed, list) and listed and all(isinstance(item, dict) for item in listed):
        parts = []
        for item in listed[:3]:
            where = f"row {item['row']}" if item.get("row") is not None else item.get("field")
            parts.append(f"{where}: {item.get('reason')}" if where else str(item.get("reason")))
        more = f"; and {len(listed) - 3} more (--json for all)" if len(listed) > 3 else ""
        line = "; ".join(parts) + more
    else:
        line = json.dumps(details, ensure_ascii=False)
    if len(line) > MAX_DETAIL_CHARS:
        line = line[: MAX_DETAIL_CHARS - 1] + "… (--json for all)"
    return f"  {line}"


class ApiCommandGroup(TyperGroup):
    """The root command group: turns the SDK's errors into short messages and an exit code."""

    # `ctx` is the Context of typer's vendored click, which typer does not export under a public name.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except TemperError as exc:
            raise typer.Exit(report_failure(exc)) from None
