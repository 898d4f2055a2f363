"""`temper studies`: ablation studies (a base spec and variants, each a job), ranked by a metric."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from services.cli.commands.output import JsonOption, client, console, print_json
from temper_client.types import Study

app = typer.Typer(
    help="Ablation studies: a base spec and its variants, ranked by a metric.", no_args_is_help=True
)

StudyId = Annotated[str, typer.Argument(help="The study's id.")]


@app.command("create")
def create(
    spec_file: Annotated[
        Path,
        typer.Argument(
            help="The study spec as JSON (the API's StudyCreate; see /docs).", exists=True, dir_okay=False
        ),
    ],
    json_output: JsonOption = False,
) -> None:
    """Start a study: the base spec runs as variant 0, then every variant."""
    with client() as temper:
        study = temper.studies.create(json.loads(spec_file.read_text()))
    if json_output:
        print_json(study)
    else:
        console.print(f"study [bold]{study.id}[/bold] {study.status}: {study.variant_count} variants")


@app.command("list")
def list_studies(
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1)] = 20,
    json_output: JsonOption = False,
) -> None:
    """The team's studies, newest first."""
    with client() as temper:
        studies = list(itertools.islice(temper.studies.list(page_size=min(limit, 200)), limit))
    if json_output:
        print_json(studies)
        return
    table = Table("id", "name", "status", "mode", "metric", "variants", "created")
    for study in studies:
        table.add_row(
            str(study.id),
            study.name or "",
            study.status,
            study.mode or "",
            f"{study.metric} ({study.direction})",
            str(study.variant_count),
            f"{study.created_at:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table)


@app.command("get")
def get(study_id: StudyId, json_output: JsonOption = False) -> None:
    """A study's variants, their jobs, and the ranking with each change's effect."""
    with client() as temper:
        study = temper.studies.get(study_id)
    if json_output:
        print_json(study)
    else:
        _print_study(study)


@app.command("cancel")
def cancel(study_id: StudyId, json_output: JsonOption = False) -> None:
    """Cancel the study's unfinished variants."""
    with client() as temper:
        study = temper.studies.cancel(study_id)
    if json_output:
        print_json(study)
    else:
        console.print(f"study {study_id}: {study.status}")


def _print_study(study: Study) -> None:
    table = Table(
        "variant",
        "overrides",
        "status",
        study.metric,
        "rank",
        "change vs base",
        title=f"study {study.id} ({study.status})",
    )
    for variant in study.variants:
        value = f"{variant.metric_value:.4f}" if variant.metric_value is not None else "-"
        table.add_row(
            str(variant.position),
            json.dumps(variant.overrides, ensure_ascii=False) if variant.overrides else "(base)",
            variant.status,
            value,
            str(variant.rank or "-"),
            variant.change_summary or (variant.error.code if variant.error else ""),
        )
    console.print(table)
