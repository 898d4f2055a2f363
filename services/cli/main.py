"""The `temper` command line. The API commands (services/cli/commands) use the SDK only; `up`,
`db`, `storage` and `demo` run parts of the stack on this machine."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from services.cli.commands import admin, datasets, jobs, models, queue, studies, webhooks
from services.cli.commands.output import ApiCommandGroup, connection

app = typer.Typer(
    cls=ApiCommandGroup,
    help="Temper: fine-tune, evaluate and publish models. The API commands read TEMPER_API_URL "
    "(default http://127.0.0.1:8000) and TEMPER_API_KEY.",
    no_args_is_help=True,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
storage_app = typer.Typer(help="The object store and the model repository.", no_args_is_help=True)
app.add_typer(datasets.app, name="datasets")
app.add_typer(jobs.app, name="jobs")
app.add_typer(models.app, name="models")
app.add_typer(studies.app, name="studies")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(admin.app, name="admin")
app.add_typer(queue.app, name="queue")
app.add_typer(db_app, name="db")
app.add_typer(storage_app, name="storage")
app.command("predict")(models.predict)
app.command("generate")(models.generate)

console = Console()


@app.callback()
def connect(
    api_url: Annotated[
        str | None,
        typer.Option(envvar="TEMPER_API_URL", help="Where the Temper API listens.", show_envvar=True),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="TEMPER_API_KEY", help="Your API key.", show_envvar=True)
    ] = None,
) -> None:
    # Runs before the subcommand's options are read, so a --json of an earlier command (in the same
    # process, as in tests) does not carry over.
    connection.url = api_url
    connection.key = api_key
    connection.json_output = False


# Embedded stack ---------------------------------------------------------------------------------


@app.command()
def up(
    host: Annotated[str, typer.Option(help="The address the API binds.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port the API listens on.")] = 8000,
    worker: Annotated[bool, typer.Option(help="Start a local worker process too")] = True,
) -> None:
    """Run the embedded stack: migrate, then the API and a local worker (no servers needed)."""
    from services.cli.embedded import run_embedded

    run_embedded(host, port, with_worker=worker)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="The port the demo's API listens on.")] = 8765,
    epochs: Annotated[float, typer.Option(help="Training epochs of the classification demo job.")] = 3.0,
    instruct: Annotated[
        bool,
        typer.Option(
            help="Instruction-tune SmolLM2 instead: LoRA, evaluation against the base model, generate."
        ),
    ] = False,
) -> None:
    """A whole job on the embedded default: a MiniLM classifier, or (--instruct) an instruction-tuned SmolLM2."""
    from services.cli.demo import run_demo

    run_demo(port=port, epochs=epochs, instruct=instruct)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="The Alembic revision to reach.")] = "head",
) -> None:
    """Apply migrations to the configured database (TEMPER_DATABASE_URL or the embedded SQLite)."""
    from services.cli.embedded import migrate

    migrate(revision)
    console.print(f"database at {revision}")


@db_app.command("reencrypt-webhook-secrets")
def db_reencrypt_webhook_secrets() -> None:
    """Move every webhook signing secret under the newest TEMPER_WEBHOOK_SECRET_KEYS key, so that
    the older keys can be removed from the list (deploy/README.md, "Security")."""
    from services.cli.webhook_keys import reencrypt_webhook_secrets

    moved, total = reencrypt_webhook_secrets()
    console.print(f"re-encrypted {moved} of {total} webhook secrets under the newest key")


@storage_app.command("init")
def storage_init(
    wait_seconds: Annotated[float, typer.Option(help="How long to wait for the store to answer.")] = 120.0,
) -> None:
    """Create the configured buckets (objects, model repository) before the services start."""
    from datetime import timedelta

    from shared.settings import get_settings
    from shared.storage.factory import ensure_configured_buckets

    for description in ensure_configured_buckets(get_settings(), timedelta(seconds=wait_seconds)):
        console.print(f"ready: {description}")


if __name__ == "__main__":
    app()
