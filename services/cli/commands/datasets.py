"""`temper datasets`: upload (with a progress bar), list, get, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from services.cli.commands.output import JsonOption, client, console, errors, print_json, show

app = typer.Typer(help="Upload and inspect datasets (validated row by row at upload).", no_args_is_help=True)


@app.command("upload")
def upload(
    path: Annotated[
        Path,
        typer.Argument(
            help="A JSONL, CSV or Parquet file; the extension names the format.", exists=True, dir_okay=False
        ),
    ],
    name: Annotated[str, typer.Option(help="The dataset's name.")],
    task: Annotated[str, typer.Option(help="What the rows are for.")] = "text-classification",
    text_column: Annotated[str, typer.Option(help="The column holding the text.")] = "text",
    label_column: Annotated[str, typer.Option(help="The column holding the label name.")] = "label",
    text_pair_column: Annotated[
        str | None, typer.Option(help="A second text column, for sentence-pair tasks.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Upload a dataset file; the API validates every row and answers with a report."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal,
    ) as progress:
        bar = progress.add_task(f"uploading {path.name}", total=path.stat().st_size)

        def advance(sent: int, total: int) -> None:
            progress.update(bar, completed=sent, total=total)
            if sent >= total:
                progress.update(bar, description="validating rows")

        with client() as temper:
            dataset = temper.datasets.upload(
                path,
                name=name,
                task=task,
                text_column=text_column,
                label_column=label_column,
                text_pair_column=text_pair_column,
                on_progress=advance,
            )
    if json_output:
        print_json(dataset)
        return
    console.print(
        f"dataset [bold]{dataset.id}[/bold]: {dataset.row_count} rows, labels {', '.join(dataset.labels)}"
    )


@app.command("list")
def list_datasets(
    task: Annotated[str | None, typer.Option(help="Only datasets for this task.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1, max=500)] = 100,
    json_output: JsonOption = False,
) -> None:
    """The team's datasets, newest first."""
    with client() as temper:
        datasets = temper.datasets.list(task=task, limit=limit)
    if json_output:
        print_json(datasets)
        return
    table = Table("id", "name", "task", "rows", "labels", "created")
    for dataset in datasets:
        table.add_row(
            str(dataset.id),
            dataset.name,
            dataset.task,
            str(dataset.row_count),
            ", ".join(dataset.labels[:6]),
            f"{dataset.created_at:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table)


@app.command("get")
def get(
    dataset_id: Annotated[str, typer.Argument(help="The dataset's id.")],
    json_output: JsonOption = False,
) -> None:
    """One dataset with its validation report (labels, lengths, duplicates)."""
    with client() as temper:
        dataset = temper.datasets.get(dataset_id)
    (print_json if json_output else show)(dataset)


@app.command("delete")
def delete(
    dataset_id: Annotated[str, typer.Argument(help="The dataset's id.")],
    json_output: JsonOption = False,
) -> None:
    """Delete a dataset (refused while a job uses it)."""
    with client() as temper:
        temper.datasets.delete(dataset_id)
    if json_output:
        print_json({"deleted": dataset_id})
    else:
        console.print(f"deleted {dataset_id}")
