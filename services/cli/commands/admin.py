"""`temper admin`: teams, API keys and the base-model catalog (an admin API key)."""

from __future__ import annotations

from datetime import datetime
from itertools import islice
from typing import Annotated

import typer
from rich.table import Table

from services.cli.commands import keys
from services.cli.commands.output import JsonOption, client, console, print_json, show

app = typer.Typer(
    help="Teams, API keys and the base-model catalog (needs an admin API key).", no_args_is_help=True
)


@app.command("create-team")
def create_team(
    name: Annotated[str, typer.Argument(help="The team's name (letters, digits, '_', '.', '-').")],
    max_concurrent_jobs: Annotated[
        int | None, typer.Option(help="How many of its jobs may run at once (default: the server's).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create a team; then issue it a key with `temper admin keys create`."""
    with client() as temper:
        team = temper.teams.create(name, max_concurrent_jobs=max_concurrent_jobs)
    (print_json if json_output else show)(team)


@app.command("list-teams")
def list_teams(json_output: JsonOption = False) -> None:
    """Every team."""
    with client() as temper:
        teams = temper.teams.list()
    if json_output:
        print_json(teams)
        return
    table = Table("id", "name", "max concurrent jobs", "created")
    for team in teams:
        table.add_row(
            str(team.id),
            team.name,
            str(team.max_concurrent_jobs or "-"),
            f"{team.created_at:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table)


# The key commands moved under `temper admin keys`; the old names stay for existing scripts.
app.add_typer(keys.app, name="keys")
app.command("create-key", hidden=True)(keys.create_key)
app.command("list-keys", hidden=True)(keys.list_keys)
app.command("revoke-key", hidden=True)(keys.revoke_key)


@app.command("audit")
def audit(
    team_id: Annotated[str | None, typer.Option(help="Only what this team's keys did.")] = None,
    action: Annotated[
        str | None, typer.Option(help="An action (job.submit) or a family of them (admin.key).")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only events at or after this time (UTC unless it says).")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many events, newest first.")] = 50,
    json_output: JsonOption = False,
) -> None:
    """The audit log: who changed what (newest first)."""
    with client() as temper:
        events = list(
            islice(
                temper.audit.list(team_id=team_id, action=action, since=since, page_size=min(limit, 500)),
                limit,
            )
        )
    if json_output:
        print_json(events)
        return
    table = Table("when", "action", "target", "key", "team", "request id")
    for event in events:
        table.add_row(
            f"{event.created_at:%Y-%m-%d %H:%M:%S}",
            event.action,
            f"{event.target_type} {event.target_id or ''}".strip(),
            event.key_prefix or "",
            str(event.team_id or ""),
            event.request_id or "",
        )
    console.print(table)


@app.command("register-base-model")
def register_base_model(
    name: Annotated[str, typer.Argument(help="The name job specs will use as base_model.")],
    source: Annotated[str, typer.Option(help="local:/path, package:<python package> or store:<prefix>.")],
    task_family: Annotated[
        str, typer.Option(help="text-classification or causal-lm.")
    ] = "text-classification",
    description: Annotated[str | None, typer.Option(help="A line about the model.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Add a base model to the catalog."""
    with client() as temper:
        entry = temper.base_models.register(
            name, source=source, task_family=task_family, description=description
        )
    (print_json if json_output else show)(entry)


@app.command("list-base-models")
def list_base_models(json_output: JsonOption = False) -> None:
    """The base-model catalog."""
    with client() as temper:
        entries = temper.base_models.list()
    if json_output:
        print_json(entries)
        return
    table = Table("name", "task family", "source", "description")
    for entry in entries:
        table.add_row(entry.name, entry.task_family, entry.source, entry.description or "")
    console.print(table)
