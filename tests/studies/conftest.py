from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.support.stack import Stack, running_stack
from tests.support.tickets import make_team


@pytest.fixture
def api_stack(embedded_settings: Settings, tiny_base_model: Path) -> Iterator[Stack]:
    """The API on the embedded default without a worker: the test plays the worker's part."""
    with running_stack(embedded_settings, with_worker=False) as stack:
        stack.register_base_model("tiny-bert", f"local:{tiny_base_model}")
        yield stack


@pytest.fixture
def team(api_stack: Stack, tmp_path: Path) -> tuple[str, dict]:
    return make_team(api_stack, tmp_path / "team")
