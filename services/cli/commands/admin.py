"""`temper admin`: teams, API keys and the base-model catalog (an admin API key)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

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
    """Create a team; then issue it a key with `temper admin create-key`."""
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


@app.command("create-key")
def create_key(
    team_id: Annotated[str, typer.Argument(help="The team's id.")],
    name: Annotated[str, typer.Option(help="What the key is for (shown in key lists).")] = "default",
    admin: Annotated[bool, typer.Option(help="Make it an admin key.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Issue an API key for a team; the key is printed once and never again."""
    with client() as temper:
        issued = temper.keys.create(team_id, name=name, is_admin=admin)
    (print_json if json_output else show)(issued)


@app.command("list-keys")
def list_keys(
    team_id: Annotated[str, typer.Argument(help="The team's id.")],
    json_output: JsonOption = False,
) -> None:
    """A team's API keys (prefixes only; the secrets are not stored)."""
    with client() as temper:
        keys = temper.keys.list(team_id)
    if json_output:
        print_json(keys)
        return
    table = Table("id", "name", "prefix", "admin", "last used", "revoked")
    for key in keys:
        table.add_row(
            str(key.id),
            key.name,
            key.prefix,
            "yes" if key.is_admin else "",
            f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "",
            f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "",
        )
    console.print(table)


@app.command("revoke-key")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `temper admin list-keys`).")],
    json_output: JsonOption = False,
) -> None:
    """Revoke an API key: every later request with it is refused."""
    with client() as temper:
        key = temper.keys.revoke(key_id)
    if json_output:
        print_json(key)
    else:
        console.print(f"revoked key {key.prefix} ({key.name})")


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
