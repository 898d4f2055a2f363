"""`temper models` (published models, versions, promote, rollback), `temper predict` and `temper generate`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from services.cli.commands.output import (
    JsonOption,
    client,
    console,
    errors,
    print_json,
    print_json_lines,
    show,
)
from temper_client.types import GenerationEnd, GenerationToken

app = typer.Typer(help="Published models: versions, promote, rollback.", no_args_is_help=True)

ModelName = Annotated[str, typer.Argument(help="The published model's name.")]


@app.command("list")
def list_models(json_output: JsonOption = False) -> None:
    """The team's published models and their production versions."""
    with client() as temper:
        models = temper.models.list()
    if json_output:
        print_json(models)
        return
    table = Table("name", "task", "production", "triton name", "created")
    for model in models:
        table.add_row(
            model.name,
            model.task,
            str(model.production_version or "-"),
            model.repository_name,
            f"{model.created_at:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table)


@app.command("get")
def get(name: ModelName, json_output: JsonOption = False) -> None:
    """One published model: versions, production version, its Triton model names."""
    with client() as temper:
        model = temper.models.get(name)
    (print_json if json_output else show)(model)


@app.command("versions")
def versions(name: ModelName, json_output: JsonOption = False) -> None:
    """A model's versions with the job that made each and its test metrics."""
    with client() as temper:
        model = temper.models.get(name)
        published = temper.models.versions(name)
    if json_output:
        print_json(published)
        return
    table = Table("version", "job", "formats", "accuracy", "f1_macro", "created")
    for version in published:
        metrics = ((version.lineage or {}).get("evaluation") or {}).get("metrics", {})
        marker = " (production)" if version.version == model.production_version else ""
        table.add_row(
            f"{version.version}{marker}",
            str(version.job_id),
            ", ".join(version.formats),
            _fmt(metrics.get("accuracy")),
            _fmt(metrics.get("f1_macro")),
            f"{version.created_at:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table)


@app.command("promote")
def promote(
    name: ModelName,
    version: Annotated[int, typer.Argument(help="The version to make production.")],
    json_output: JsonOption = False,
) -> None:
    """Make a version the production one (Triton loads it)."""
    with client() as temper:
        model = temper.models.promote(name, version)
    if json_output:
        print_json(model)
    else:
        console.print(f"{name}: production is version {model.production_version}")


@app.command("rollback")
def rollback(name: ModelName, json_output: JsonOption = False) -> None:
    """Go back to the previous production version."""
    with client() as temper:
        model = temper.models.rollback(name)
    if json_output:
        print_json(model)
    else:
        console.print(f"{name}: production is back to version {model.production_version}")


def predict(
    model: ModelName,
    texts: Annotated[list[str], typer.Argument(help="One or more texts to classify.")],
    version: Annotated[int | None, typer.Option(help="A version other than the production one.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Classify texts with a published model (the production version unless --version)."""
    with client() as temper:
        answer = temper.models.predict(model, texts, version=version)
    if json_output:
        print_json(answer)
        return
    table = Table("text", "label", "score", title=f"{model} v{answer.version}")
    for text, prediction in zip(texts, answer.predictions, strict=True):
        table.add_row(text, prediction.label, f"{prediction.scores[prediction.label]:.3f}")
    console.print(table)


def generate(
    model: ModelName,
    prompt: Annotated[str, typer.Argument(help="What to ask the model.")],
    system: Annotated[str | None, typer.Option(help="A system message to send before the prompt.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Stop after this many new tokens.", min=1)] = 256,
    temperature: Annotated[
        float, typer.Option(help="0 for greedy decoding; higher samples more freely.", min=0.0)
    ] = 0.0,
    stream: Annotated[bool, typer.Option(help="Print the answer as it is generated.")] = True,
    json_output: JsonOption = False,
) -> None:
    """Generate an answer with a published instruction-tuned model."""
    # With a system message the prompt becomes the user's turn of a chat.
    messages = (
        None
        if system is None
        else [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
    )
    plain_prompt = prompt if messages is None else None
    with client() as temper:
        if not stream:
            generation = temper.models.generate(
                model, plain_prompt, messages=messages, max_new_tokens=max_new_tokens, temperature=temperature
            )
            if json_output:
                print_json(generation)
            else:
                typer.echo(generation.text)
                errors.print(f"[dim]{generation.finish_reason}, {generation.tokens} tokens[/dim]")
            return
        events = temper.models.generate_stream(
            model, plain_prompt, messages=messages, max_new_tokens=max_new_tokens, temperature=temperature
        )
        if json_output:
            print_json_lines(events)
            return
        for event in events:
            if isinstance(event, GenerationToken):
                sys.stdout.write(event.text)
                sys.stdout.flush()
            elif isinstance(event, GenerationEnd):
                sys.stdout.write("\n")
                errors.print(f"[dim]{event.finish_reason}, {event.tokens} tokens[/dim]")


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"
