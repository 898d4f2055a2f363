"""The `temper` command line. Everything but `up`, `db` and `demo` talks to the REST API only."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from services.cli.api_client import ApiError, TemperApi

app = typer.Typer(help="Temper: fine-tune, evaluate and publish models.", no_args_is_help=True)
datasets_app = typer.Typer(help="Upload and inspect datasets.", no_args_is_help=True)
jobs_app = typer.Typer(help="Submit and watch fine-tuning jobs.", no_args_is_help=True)
admin_app = typer.Typer(help="Teams, API keys and the base-model catalog (admin key).", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
models_app = typer.Typer(help="Published models: versions, promote, rollback.", no_args_is_help=True)
storage_app = typer.Typer(help="The object store and the model repository.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(jobs_app, name="jobs")
app.add_typer(admin_app, name="admin")
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(storage_app, name="storage")

console = Console()
TERMINAL = {"succeeded", "failed", "cancelled"}


def api() -> TemperApi:
    url = os.environ.get("TEMPER_API_URL", "http://127.0.0.1:8000")
    return TemperApi(url, os.environ.get("TEMPER_API_KEY"))


def show(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


def run_api_call(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except ApiError as exc:
        console.print(f"[red]error[/red] {exc}")
        if exc.details:
            show(exc.details)
        raise typer.Exit(1) from exc


# Embedded stack ---------------------------------------------------------------------------------


@app.command()
def up(
    host: str = "127.0.0.1",
    port: int = 8000,
    worker: Annotated[bool, typer.Option(help="Start a local worker process too")] = True,
) -> None:
    """Run the embedded stack: migrate, then the API and a local worker (no servers needed)."""
    from services.cli.embedded import run_embedded

    run_embedded(host, port, with_worker=worker)


@app.command()
def demo(
    port: int = 8765,
    epochs: float = 3.0,
) -> None:
    """The whole job on the embedded default: register MiniLM, upload the demo set, train, report."""
    from services.cli.demo import run_demo

    run_demo(port=port, epochs=epochs)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations to the configured database (TEMPER_DATABASE_URL or the embedded SQLite)."""
    from services.cli.embedded import migrate

    migrate(revision)
    console.print(f"database at {revision}")


@storage_app.command("init")
def storage_init(wait_seconds: float = 120.0) -> None:
    """Create the configured buckets (objects, model repository) before the services start."""
    from datetime import timedelta

    from shared.settings import get_settings
    from shared.storage.factory import ensure_configured_buckets

    for description in ensure_configured_buckets(get_settings(), timedelta(seconds=wait_seconds)):
        console.print(f"ready: {description}")


# Datasets ---------------------------------------------------------------------------------------


@datasets_app.command("upload")
def datasets_upload(
    path: Path,
    name: Annotated[str, typer.Option(help="Dataset name")],
    task: str = "text-classification",
    text_column: str = "text",
    label_column: str = "label",
    text_pair_column: str | None = None,
) -> None:
    columns = {"text_column": text_column, "label_column": label_column}
    if text_pair_column:
        columns["text_pair_column"] = text_pair_column
    dataset = run_api_call(api().upload_dataset, path, name, task, **columns)
    console.print(
        f"dataset [bold]{dataset['id']}[/bold]: {dataset['row_count']} rows, labels {dataset['labels']}"
    )


@datasets_app.command("list")
def datasets_list() -> None:
    table = Table("id", "name", "task", "rows", "labels", "created")
    for dataset in run_api_call(api().request, "GET", "/v1/datasets"):
        table.add_row(
            dataset["id"],
            dataset["name"],
            dataset["task"],
            str(dataset["row_count"]),
            ", ".join(dataset["labels"][:6]),
            dataset["created_at"][:19],
        )
    console.print(table)


@datasets_app.command("get")
def datasets_get(dataset_id: str) -> None:
    show(run_api_call(api().request, "GET", f"/v1/datasets/{dataset_id}"))


@datasets_app.command("delete")
def datasets_delete(dataset_id: str) -> None:
    run_api_call(api().request, "DELETE", f"/v1/datasets/{dataset_id}")
    console.print(f"deleted {dataset_id}")


# Jobs -------------------------------------------------------------------------------------------


@jobs_app.command("submit")
def jobs_submit(
    spec_file: Annotated[Path, typer.Argument(help="JSON job spec")],
    watch_job: Annotated[bool, typer.Option("--watch", help="Follow progress until the job ends")] = False,
    idempotency_key: str | None = None,
) -> None:
    spec = json.loads(spec_file.read_text())
    job = run_api_call(api().submit_job, spec, idempotency_key or str(uuid.uuid4()))
    console.print(f"job [bold]{job['id']}[/bold] {job['status']}")
    if watch_job:
        watch(job["id"])


@jobs_app.command("list")
def jobs_list(status: list[str] | None = None, limit: int = 20) -> None:
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    page = run_api_call(api().request, "GET", "/v1/jobs", params=params)
    table = Table("id", "name", "status", "stage", "progress", "created")
    for job in page["items"]:
        table.add_row(
            job["id"],
            job["name"] or "",
            job["status"],
            job["stage"] or "",
            f"{job['progress'].get('percent', 0):.0f}%",
            job["created_at"][:19],
        )
    console.print(table)


@jobs_app.command("get")
def jobs_get(job_id: str) -> None:
    show(run_api_call(api().get_job, job_id))


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    job = run_api_call(api().request, "POST", f"/v1/jobs/{job_id}/cancel")
    console.print(f"job {job_id}: {job['status']}")


@jobs_app.command("watch")
def watch(job_id: str) -> None:
    """A live progress bar fed by the job's event stream, until the job ends."""
    client = api()
    job = run_api_call(client.get_job, job_id)
    with Progress(
        TextColumn("[bold]{task.fields[stage]:<10}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("step {task.completed:.0f}/{task.total:.0f}"),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task("job", total=1, stage=job["status"], detail="")
        for event in run_api_call(lambda: list_events(client, job_id)):
            data = event["data"]
            if event["event"] == "progress":
                payload = data["data"]
                loss = payload.get("loss")
                detail = (
                    f"loss {loss:.4f}  {payload.get('samples_per_second') or 0:.1f} samples/s" if loss else ""
                )
                progress.update(
                    bar, total=max(payload["total_steps"], 1), completed=payload["step"], detail=detail
                )
            elif event["event"] == "transition":
                progress.update(bar, stage=data["to_status"])
                console.print(f"{data['created_at'][11:19]}  {data['from_status']} → {data['to_status']}")
            elif event["event"] in ("log", "checkpoint"):
                console.print(f"{data['created_at'][11:19]}  {data['message']}")
    job = client.get_job(job_id)
    console.print(f"job {job_id}: [bold]{job['status']}[/bold]")
    if job["error"]:
        console.print(
            f"[red]{job['error']['code']}[/red] in {job['error']['stage']}: {job['error']['message']}"
        )


@jobs_app.command("report")
def jobs_report(
    job_id: str,
    html: Annotated[Path | None, typer.Option(help="Also save the HTML report to this file")] = None,
) -> None:
    """The evaluation summary: metrics against the baseline with confidence intervals, and the gate."""
    client = api()
    report = run_api_call(client.request, "GET", f"/v1/jobs/{job_id}/evaluation")
    comparison = report["baseline_comparison"]
    table = Table(
        "metric",
        "model",
        f"baseline: {comparison['baseline']}",
        "delta",
        "95% CI of delta",
        title=f"evaluation on {report.get('split', 'test')} ({comparison['rows']} rows)",
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
    if report.get("gate"):
        gate = report["gate"]
        console.print(
            f"gate: {'[green]passed' if gate['passed'] else '[red]failed'}[/] " + "; ".join(gate["reasons"])
        )
    if html is not None:
        response = client.http.get(f"/v1/jobs/{job_id}/evaluation.html")
        html.write_bytes(response.content)
        console.print(f"HTML report written to {html}")


def _fmt(value: object, signed: bool = False) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def list_events(client: TemperApi, job_id: str):
    yield from client.stream_events(job_id)


# Models -------------------------------------------------------------------------------------------


@models_app.command("list")
def models_list() -> None:
    show(run_api_call(api().request, "GET", "/v1/models"))


@models_app.command("versions")
def models_versions(name: str) -> None:
    table = Table("version", "job", "formats", "accuracy", "f1_macro", "created")
    model = run_api_call(api().request, "GET", f"/v1/models/{name}")
    for version in run_api_call(api().request, "GET", f"/v1/models/{name}/versions"):
        metrics = ((version["lineage"] or {}).get("evaluation") or {}).get("metrics", {})
        marker = " (production)" if version["version"] == model["production_version"] else ""
        table.add_row(
            f"{version['version']}{marker}",
            version["job_id"],
            ", ".join(version["formats"]),
            _fmt(metrics.get("accuracy")),
            _fmt(metrics.get("f1_macro")),
            version["created_at"][:19],
        )
    console.print(table)


@models_app.command("promote")
def models_promote(name: str, version: int) -> None:
    model = run_api_call(api().request, "POST", f"/v1/models/{name}/versions/{version}/promote")
    console.print(f"{name}: production is version {model['production_version']}")


@models_app.command("rollback")
def models_rollback(name: str) -> None:
    model = run_api_call(api().request, "POST", f"/v1/models/{name}/rollback")
    console.print(f"{name}: production is back to version {model['production_version']}")


@app.command()
def predict(
    model: str,
    texts: Annotated[list[str], typer.Argument(help="One or more texts to classify")],
    version: int | None = None,
) -> None:
    """Classify texts with a published model (the production version unless --version)."""
    body: dict[str, Any] = {"texts": texts, **({"version": version} if version else {})}
    answer = run_api_call(api().request, "POST", f"/v1/models/{model}/predict", json=body)
    table = Table("text", "label", "score", title=f"{model} v{answer['version']}")
    for text, prediction in zip(texts, answer["predictions"], strict=True):
        table.add_row(text, prediction["label"], f"{prediction['scores'][prediction['label']]:.3f}")
    console.print(table)


# Admin ------------------------------------------------------------------------------------------


@admin_app.command("create-team")
def admin_create_team(name: str, max_concurrent_jobs: int | None = None) -> None:
    show(
        run_api_call(
            api().request,
            "POST",
            "/v1/teams",
            json={"name": name, "max_concurrent_jobs": max_concurrent_jobs},
        )
    )


@admin_app.command("list-teams")
def admin_list_teams() -> None:
    show(run_api_call(api().request, "GET", "/v1/teams"))


@admin_app.command("create-key")
def admin_create_key(team_id: str, name: str = "default", admin: bool = False) -> None:
    """Issue an API key for a team; the key is printed once."""
    show(
        run_api_call(
            api().request, "POST", f"/v1/teams/{team_id}/keys", json={"name": name, "is_admin": admin}
        )
    )


@admin_app.command("register-base-model")
def admin_register_base_model(
    name: str,
    source: Annotated[str, typer.Option(help="local:/path, package:<python package> or store:<prefix>")],
    task_family: str = "text-classification",
    description: str | None = None,
) -> None:
    body = {"name": name, "source": source, "task_family": task_family, "description": description}
    show(run_api_call(api().request, "POST", "/v1/base-models", json=body))


@admin_app.command("list-base-models")
def admin_list_base_models() -> None:
    show(run_api_call(api().request, "GET", "/v1/base-models"))


if __name__ == "__main__":
    app()
