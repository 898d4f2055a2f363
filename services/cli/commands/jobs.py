"""`temper jobs`: submit (or dry-run), list, get, cancel, watch (live, over the event stream), report, files."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from services.cli.commands.output import (
    JsonOption,
    client,
    console,
    print_json,
    print_json_lines,
    show,
)
from temper_client import Temper
from temper_client.types import Job, JobDryRun

app = typer.Typer(help="Submit, follow and inspect fine-tuning jobs.", no_args_is_help=True)

JobId = Annotated[str, typer.Argument(help="The job's id.")]


@app.command("submit")
def submit(
    spec_file: Annotated[
        Path,
        typer.Argument(
            help="The job spec as JSON (the API's JobCreate; see /docs).", exists=True, dir_okay=False
        ),
    ],
    name: Annotated[str | None, typer.Option(help="A name for the job (overrides the spec's).")] = None,
    watch_job: Annotated[bool, typer.Option("--watch", help="Follow the job until it ends.")] = False,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Submitting again with the same key returns the first job.")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Submit nothing: show the job as it would run (tokens, steps, estimated duration and "
            "memory, tokenizer fit and warnings).",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Submit a fine-tuning job from a JSON spec."""
    spec = json.loads(spec_file.read_text())
    if dry_run and watch_job:
        raise typer.BadParameter("a dry run starts no job to watch", param_hint="--watch")
    with client() as temper:
        if dry_run:
            planned = temper.jobs.dry_run(spec)
            if json_output:
                print_json(planned)
            else:
                show_dry_run(planned)
            return
        job = temper.jobs.create(spec, name=name, idempotency_key=idempotency_key)
        if json_output:
            print_json(job)
            if watch_job:
                print_json_lines(temper.jobs.watch(job.id))
            return
        console.print(f"job [bold]{job.id}[/bold] {job.status}")
        if watch_job:
            follow(temper, str(job.id))


def show_dry_run(planned: JobDryRun) -> None:
    """The dry run for a person: what would run, how long and how big, and what to fix first."""
    model = planned.base_model
    console.print(f"[bold]dry run[/bold]: nothing was submitted; a {planned.worker_class} worker would run:")
    console.print(
        f"base model  {model.name} ({model.model_type or 'unknown type'}): {model.parameters:,} parameters, "
        f"{model.trainable_parameters:,} trained"
    )
    table = Table(
        "split", "rows", "tokens", "mean", "p95", "max", "cut", title="tokens as the model reads them"
    )
    for entry in planned.tokens:
        table.add_row(
            entry.split,
            f"{entry.rows:,}",
            f"{entry.tokens:,}",
            f"{entry.mean:.1f}",
            f"{entry.p95:.0f}",
            str(entry.max),
            f"{entry.truncated_share:.0%}",
        )
    console.print(table)
    steps = planned.steps
    console.print(
        f"steps       {steps.total_steps:,} ({steps.steps_per_epoch:,} an epoch x {steps.epochs:g}), "
        f"{steps.total_tokens:,} training tokens"
    )
    duration = planned.duration
    stages = ", ".join(
        f"{stage} {_duration(seconds) if seconds is not None else 'not estimated'}"
        for stage, seconds in duration.stages.items()
    )
    console.print(f"duration    about {_duration(duration.seconds)} ({duration.basis}): {stages}")
    for line in duration.explanation:
        console.print(f"            {line}", style="dim")
    memory = planned.memory
    parts = ", ".join(f"{name} {_size(size)}" for name, size in memory.components.items())
    console.print(
        f"memory      peak about {_size(memory.peak_bytes)} on a {memory.worker_class} worker ({parts})"
    )
    fit = planned.tokenizer_fit
    scripts = ", ".join(f"{entry.script} {entry.share:.0%}" for entry in fit.scripts[:3]) or "no letters"
    fallback = f"{fit.byte_fallback_share:.0%}" if fit.byte_fallback_share is not None else "unknown"
    console.print(
        f"tokenizer   {fit.unknown_share:.1%} unknown tokens, {fallback} of bytes spelled out, scripts: {scripts}"
    )
    for warning in planned.warnings:
        console.print(f"[yellow]warning[/yellow]: {warning}")
    for note in planned.notes:
        console.print(f"note: {note}", style="dim")


def _size(size: int) -> str:
    return f"{size / 1024**3:.1f} GiB" if size >= 1024**3 else f"{size / 1024**2:.1f} MiB"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@app.command("list")
def list_jobs(
    status: Annotated[
        list[str] | None, typer.Option(help="Only jobs in this status (repeat for several).")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1)] = 20,
    json_output: JsonOption = False,
) -> None:
    """The team's jobs, newest first."""
    with client() as temper:
        jobs = list(itertools.islice(temper.jobs.list(status=status, page_size=min(limit, 200)), limit))
    if json_output:
        print_json(jobs)
        return
    table = Table("id", "name", "status", "stage", "progress", "created")
    for job in jobs:
        table.add_row(
            str(job.id),
            job.name or "",
            job.status,
            job.stage or "",
            f"{job.progress.percent:.0f}%",
            f"{job.created_at:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table)


@app.command("get")
def get(job_id: JobId, json_output: JsonOption = False) -> None:
    """One job: status, stage, progress, metrics, error, spec and results."""
    with client() as temper:
        job = temper.jobs.get(job_id)
    (print_json if json_output else show)(job)


@app.command("cancel")
def cancel(job_id: JobId, json_output: JsonOption = False) -> None:
    """Ask a job to stop; it saves a checkpoint and ends as cancelled."""
    with client() as temper:
        job = temper.jobs.cancel(job_id)
    if json_output:
        print_json(job)
    else:
        console.print(f"job {job_id}: {job.status}")


@app.command("watch")
def watch(job_id: JobId, json_output: JsonOption = False) -> None:
    """Follow a job live (progress bar, transitions, logs) until it ends."""
    with client() as temper:
        if json_output:
            print_json_lines(temper.jobs.watch(job_id))
            return
        follow(temper, job_id)


def follow(temper: Temper, job_id: str) -> Job:
    """A live progress bar fed by the job's event stream; returns the finished job."""
    job = temper.jobs.get(job_id)
    with Progress(
        TextColumn("[bold]{task.fields[stage]:<10}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("step {task.completed:.0f}/{task.total:.0f}"),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task("job", total=1, stage=job.status, detail="")
        for event in temper.jobs.watch(job_id):
            stamp = f"{event.created_at:%H:%M:%S}"
            if event.type == "progress":
                payload = event.data
                loss = payload.get("loss")
                detail = (
                    f"loss {loss:.4f}  {payload.get('samples_per_second') or 0:.1f} samples/s" if loss else ""
                )
                progress.update(
                    bar,
                    total=max(payload.get("total_steps", 1), 1),
                    completed=payload.get("step", 0),
                    detail=detail,
                )
            elif event.type == "transition":
                progress.update(bar, stage=event.to_status)
                console.print(f"{stamp}  {event.from_status} → {event.to_status}")
            elif event.type in ("log", "checkpoint"):
                console.print(f"{stamp}  {event.message}")
    job = temper.jobs.get(job_id)
    console.print(f"job {job_id}: [bold]{job.status}[/bold]")
    if job.error:
        console.print(f"[red]{job.error.code}[/red] in {job.error.stage}: {job.error.message}")
    return job


@app.command("events")
def events(
    job_id: JobId,
    event_type: Annotated[
        str | None, typer.Option("--type", help="Only events of this type (transition, progress, log, ...).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """The job's events so far, oldest first."""
    with client() as temper:
        history = list(temper.jobs.events(job_id, type=event_type))
    if json_output:
        print_json(history)
        return
    table = Table("id", "time", "type", "change", "message")
    for event in history:
        change = f"{event.from_status} → {event.to_status}" if event.to_status else ""
        table.add_row(str(event.id), f"{event.created_at:%H:%M:%S}", event.type, change, event.message or "")
    console.print(table)


@app.command("metrics")
def metrics(
    job_id: JobId,
    name: Annotated[list[str] | None, typer.Option(help="Only this metric (repeat for several).")] = None,
    json_output: JsonOption = False,
) -> None:
    """The job's metric series (loss, learning rate, evaluation metrics) with their last value."""
    with client() as temper:
        series = temper.jobs.metrics(job_id, names=name)
    if json_output:
        print_json(series)
        return
    table = Table("metric", "points", "last step", "last value")
    for entry in series:
        last = entry.points[-1] if entry.points else None
        table.add_row(
            entry.name,
            str(len(entry.points)),
            str(last.step if last else ""),
            _fmt(last.value if last else None),
        )
    console.print(table)


@app.command("artifacts")
def artifacts(job_id: JobId, json_output: JsonOption = False) -> None:
    """The job's output files (model, adapter, reports, exports) with download URLs."""
    with client() as temper:
        files = temper.jobs.artifacts(job_id)
    if json_output:
        print_json(files)
        return
    table = Table("path", "bytes")
    for file in files:
        table.add_row(file.path, f"{file.size:,}")
    console.print(table)


@app.command("checkpoints")
def checkpoints(job_id: JobId, json_output: JsonOption = False) -> None:
    """The job's uploaded training checkpoints."""
    with client() as temper:
        saved = temper.jobs.checkpoints(job_id)
    if json_output:
        print_json(saved)
        return
    table = Table("step", "epoch", "bytes", "created")
    for checkpoint in saved:
        table.add_row(
            str(checkpoint.step),
            _fmt(checkpoint.epoch),
            f"{checkpoint.size_bytes:,}",
            f"{checkpoint.created_at:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table)


@app.command("download")
def download(
    job_id: JobId,
    path: Annotated[
        str, typer.Argument(help="The file's path in the job, as `temper jobs artifacts` lists it.")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write it (default: its name).")
    ] = None,
) -> None:
    """Download one of the job's files."""
    with client() as temper:
        written = temper.jobs.download(job_id, path, output or Path(path).name)
    console.print(f"wrote {written}")


@app.command("report")
def report(
    job_id: JobId,
    html: Annotated[Path | None, typer.Option(help="Also save the HTML report to this file.")] = None,
    json_output: JsonOption = False,
) -> None:
    """The evaluation: metrics against the baseline with confidence intervals, and the gate."""
    with client() as temper:
        evaluation = temper.jobs.evaluation(job_id)
        if html is not None:
            html.write_text(temper.jobs.evaluation_html(job_id), encoding="utf-8")
    if json_output:
        print_json(evaluation)
    else:
        _print_report(evaluation)
    if html is not None:
        console.print(f"HTML report written to {html}")


def _print_report(evaluation: dict[str, Any]) -> None:
    comparison = evaluation["baseline_comparison"]
    table = Table(
        "metric",
        "model",
        f"baseline: {comparison['baseline']}",
        "delta",
        "95% CI of delta",
        title=f"evaluation on {evaluation.get('split', 'test')} ({comparison['rows']} rows)",
    )
    for name, entry in comparison["metrics"].items():
        interval = entry.get("delta_interval") or {}
        ci = f"[{interval['low']:+.4f}, {interval['high']:+.4f}]" if interval else ""
        table.add_row(
            name, _fmt(entry["candidate"]), _fmt(entry["baseline"]), _fmt(entry["delta"], signed=True), ci
        )
    console.print(table)
    mcnemar = comparison.get("mcnemar") or {}
    if mcnemar:
        console.print(f"McNemar: p = {mcnemar.get('p_value')}")
    gate = evaluation.get("gate")
    if gate:
        verdict = "[green]passed" if gate["passed"] else "[red]failed"
        console.print(f"gate: {verdict}[/] " + "; ".join(gate["reasons"]))


def _fmt(value: object, signed: bool = False) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"
