"""`temper queue`: admission as the dispatcher sees it, pausing it, and team quotas (an admin key)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from services.cli.commands.output import JsonOption, client, console, print_json, show
from temper_client.types import QueueState

app = typer.Typer(
    help="The job queue: slots, waiting jobs, pausing admission, team quotas (needs an admin API key).",
    no_args_is_help=True,
)


def _print_queue(state: QueueState) -> None:
    paused = f"paused ({state.paused_reason or 'no reason given'})" if state.paused else "admitting"
    console.print(f"{paused}; {state.running} of {state.slots} slot(s) busy; {state.waiting} job(s) waiting")
    table = Table("team", "running", "waiting", "max at once", "GPU-hours used", "GPU-hours quota", "blocked")
    for team in state.teams:
        table.add_row(
            team.team_name,
            str(team.running),
            str(team.waiting),
            str(team.max_concurrent_jobs),
            f"{team.gpu_hours_used:.2f}",
            f"{team.gpu_hours_per_period:g} / {team.period_days:g} d" if team.gpu_hours_per_period else "-",
            team.blocked or "",
        )
    console.print(table)


@app.command("show")
def show_queue(json_output: JsonOption = False) -> None:
    """Slots, running and waiting jobs, and per team: quotas, usage and what holds its jobs back."""
    with client() as temper:
        state = temper.queue.get()
    print_json(state) if json_output else _print_queue(state)


@app.command("pause")
def pause(
    reason: Annotated[str | None, typer.Option(help="Why; shown on every waiting job.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Admit no more jobs: running ones go on, new ones are accepted and wait (before worker maintenance)."""
    with client() as temper:
        state = temper.queue.pause(reason)
    print_json(state) if json_output else _print_queue(state)


@app.command("resume")
def resume(json_output: JsonOption = False) -> None:
    """Admit jobs again; waiting jobs start as slots allow."""
    with client() as temper:
        state = temper.queue.resume()
    print_json(state) if json_output else _print_queue(state)


@app.command("quota")
def quota(
    team_id: Annotated[str, typer.Argument(help="The team's id.")],
    json_output: JsonOption = False,
) -> None:
    """A team's quotas in effect and its usage."""
    with client() as temper:
        answer = temper.queue.quota(team_id)
    (print_json if json_output else show)(answer)


@app.command("set-quota")
def set_quota(
    team_id: Annotated[str, typer.Argument(help="The team's id.")],
    max_concurrent_jobs: Annotated[
        int | None, typer.Option(help="Jobs of the team that may run at once (omit: the server's default).")
    ] = None,
    gpu_hours: Annotated[
        float | None,
        typer.Option(help="GPU-hours the team may use per quota period (omit: the server's default)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Set a team's quotas; jobs over them are accepted and wait in the queue."""
    with client() as temper:
        answer = temper.queue.set_quota(
            team_id, max_concurrent_jobs=max_concurrent_jobs, gpu_hours_per_period=gpu_hours
        )
    (print_json if json_output else show)(answer)
