"""Where the shared real datasets live, for the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.datasets import DATASETS_DIR


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    assert DATASETS_DIR.is_dir(), f"the shared datasets are not at {DATASETS_DIR}"
    return DATASETS_DIR
