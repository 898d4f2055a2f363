from __future__ import annotations

from pathlib import Path

import pytest

from shared.storage.base import ObjectStore
from shared.storage.local import LocalObjectStore

# Imported here once for every module of this package: each import of a session fixture into a
# test module would define (and start) another moto server.
from tests.support.s3_server import s3_server, s3_store  # noqa: F401


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """Each backend in turn: behaviour shared by the interface must hold for both."""
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    return request.getfixturevalue("s3_store")
