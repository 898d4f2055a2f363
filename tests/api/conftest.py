from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.support.stack import Stack, running_stack


@pytest.fixture
def api_stack(embedded_settings: Settings, tiny_base_model: Path) -> Iterator[Stack]:
    """The API on the embedded default without a worker: jobs stay queued."""
    with running_stack(embedded_settings, with_worker=False) as stack:
        stack.register_base_model("tiny-bert", f"local:{tiny_base_model}")
        yield stack


@pytest.fixture
def postgres_settings(embedded_settings: Settings, postgres_url: str) -> Settings:
    """The embedded default with a real Postgres database: what NUL bytes and types meet in production."""
    return embedded_settings.model_copy(update={"database_url": postgres_url})


@pytest.fixture
def postgres_stack(postgres_settings: Settings, tiny_base_model: Path) -> Iterator[Stack]:
    """The API on Postgres without a worker: jobs stay queued."""
    with running_stack(postgres_settings, with_worker=False) as stack:
        stack.register_base_model("tiny-bert", f"local:{tiny_base_model}")
        yield stack
