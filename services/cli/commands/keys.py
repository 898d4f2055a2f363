"""`temper admin keys`: issue, list, revoke and rotate API keys (an admin API key)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from services.cli.commands.output import JsonOption, client, console, print_json, show

app = typer.Typer(
    help="Issue, list, revoke and rotate API keys (needs an admin API key).", no_args_is_help=True
)

ScopeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        help="read, write or admin (repeatable; each implies the ones before it). Default: read and write.",
    ),
]


@app.command("create")
def create_key(
    team_id: Annotated[str, typer.Argument(help="The team's id.")],
    name: Annotated[str, typer.Option(help="What the key is for (shown in key lists).")] = "default",
    scope: ScopeOption = None,
    admin: Annotated[bool, typer.Option(help="Make it an admin key (same as --scope admin).")] = False,
    rate_limit: Annotated[
        int | None, typer.Option(help="Requests per minute for this key (default: the server's).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Issue an API key for a team; the key is printed once and never again."""
    scopes = scope or (["admin"] if admin else None)
    with client() as temper:
        issued = temper.keys.create(team_id, name=name, scopes=scopes, rate_limit_per_minute=rate_limit)
    (print_json if json_output else show)(issued)


@app.command("list")
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
    table = Table("id", "name", "prefix", "scopes", "last used", "revoked")
    for key in keys:
        table.add_row(
            str(key.id),
            key.name,
            key.prefix,
            ",".join(key.scopes),
            f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "",
            f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "",
        )
    console.print(table)


@app.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `temper admin keys list`).")],
    json_output: JsonOption = False,
) -> None:
    """Revoke an API key: every later request with it is refused (401)."""
    with client() as temper:
        key = temper.keys.revoke(key_id)
    if json_output:
        print_json(key)
    else:
        console.print(f"revoked key {key.prefix} ({key.name})")


@app.command("rotate")
def rotate_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `temper admin keys list`).")],
    grace: Annotated[
        int, typer.Option(help="Seconds the old key keeps working, to switch callers over (default 0).")
    ] = 0,
    json_output: JsonOption = False,
) -> None:
    """Issue a new secret with the key's team, name and scopes and revoke the old key; the new key
    is printed once and never again."""
    with client() as temper:
        rotated = temper.keys.rotate(key_id, grace_seconds=grace)
    if json_output:
        print_json(rotated)
        return
    until = f"at {rotated.previous.revoked_at:%Y-%m-%d %H:%M:%S} UTC" if grace else "now"
    console.print(f"new key (shown once, store it now): {rotated.key}", highlight=False, soft_wrap=True)
    console.print(f"key {rotated.previous.prefix} ({rotated.previous.name}) stops working {until}")
