"""Where the shared real datasets live, for the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest

DATASETS_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not DATASETS_DIR.is_dir():
        pytest.skip(f"the shared datasets are not at {DATASETS_DIR}")
    return DATASETS_DIR
