"""`temper webhooks`: endpoints that hear about the team's jobs and studies, and their deliveries."""

from __future__ import annotations

import itertools
from typing import Annotated

import typer
from rich.table import Table

from services.cli.commands.output import JsonOption, client, console, print_json, show

app = typer.Typer(
    help="Endpoints that get the team's job and study events (signed, retried), and their deliveries.",
    no_args_is_help=True,
)

EndpointId = Annotated[str, typer.Argument(help="The endpoint's id.")]
EVENTS_HELP = (
    "An event type to deliver (repeat for several): job.succeeded, job.failed, job.cancelled, "
    "job.gate_failed, study.succeeded, study.failed, study.cancelled."
)


@app.command("create")
def create(
    url: Annotated[str, typer.Argument(help="Where to POST events: an http:// or https:// URL.")],
    event: Annotated[list[str] | None, typer.Option(help=EVENTS_HELP + " Default: all of them.")] = None,
    description: Annotated[str | None, typer.Option(help="What the endpoint is for.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Register an endpoint; prints its signing secret, once."""
    with client() as temper:
        created = temper.webhooks.create(url, events=event, description=description)
    if json_output:
        print_json(created)
        return
    console.print(f"endpoint [bold]{created.id}[/bold] for {', '.join(created.events)}")
    console.print(f"signing secret: [bold]{created.secret}[/bold]", highlight=False)
    console.print("store it now: it is not shown again (verify with temper_client.verify_signature)")


@app.command("list")
def list_endpoints(json_output: JsonOption = False) -> None:
    """The team's endpoints."""
    with client() as temper:
        endpoints = temper.webhooks.list()
    if json_output:
        print_json(endpoints)
        return
    table = Table("id", "url", "events", "active", "created")
    for endpoint in endpoints:
        table.add_row(
            str(endpoint.id),
            endpoint.url,
            ", ".join(endpoint.events),
            "yes" if endpoint.active else "no",
            f"{endpoint.created_at:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table)


@app.command("get")
def get(endpoint_id: EndpointId, json_output: JsonOption = False) -> None:
    """One endpoint (its secret is never shown again)."""
    with client() as temper:
        endpoint = temper.webhooks.get(endpoint_id)
    (print_json if json_output else show)(endpoint)


@app.command("update")
def update(
    endpoint_id: EndpointId,
    url: Annotated[str | None, typer.Option(help="A new URL.")] = None,
    event: Annotated[list[str] | None, typer.Option(help=EVENTS_HELP + " Replaces the list.")] = None,
    description: Annotated[str | None, typer.Option(help="A new description.")] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Deliver to it, or pause it.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Change an endpoint's URL, events or description, or pause it."""
    with client() as temper:
        endpoint = temper.webhooks.update(
            endpoint_id, url=url, events=event, description=description, active=active
        )
    (print_json if json_output else show)(endpoint)


@app.command("delete")
def delete(endpoint_id: EndpointId) -> None:
    """Delete an endpoint and its delivery history."""
    with client() as temper:
        temper.webhooks.delete(endpoint_id)
    console.print(f"endpoint {endpoint_id} deleted")


@app.command("deliveries")
def deliveries(
    endpoint_id: EndpointId,
    limit: Annotated[int, typer.Option(help="At most this many attempts, newest first.", min=1)] = 20,
    json_output: JsonOption = False,
) -> None:
    """Delivery attempts to an endpoint, newest first: status code, error, duration, next retry."""
    with client() as temper:
        attempts = list(
            itertools.islice(temper.webhooks.deliveries(endpoint_id, page_size=min(limit, 200)), limit)
        )
    if json_output:
        print_json(attempts)
        return
    table = Table("time", "event", "attempt", "status", "code", "ms", "next retry", "error")
    for attempt in attempts:
        table.add_row(
            f"{attempt.created_at:%H:%M:%S}",
            attempt.event_type,
            str(attempt.attempt),
            attempt.status,
            str(attempt.status_code or ""),
            str(attempt.duration_ms if attempt.duration_ms is not None else ""),
            f"{attempt.next_retry_at:%H:%M:%S}" if attempt.next_retry_at else "",
            attempt.error or "",
        )
    console.print(table)


@app.command("test")
def test(endpoint_id: EndpointId, json_output: JsonOption = False) -> None:
    """Send a webhook.test event to an endpoint now."""
    with client() as temper:
        attempt = temper.webhooks.test(endpoint_id)
    if json_output:
        print_json(attempt)
    else:
        console.print(f"test event {attempt.event_id} queued; see `temper webhooks deliveries {endpoint_id}`")
