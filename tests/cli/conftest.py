from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.settings import Settings
from tests.support.live_api import LiveApi, running_api


@pytest.fixture
def live_api(embedded_settings: Settings) -> Iterator[LiveApi]:
    with running_api(embedded_settings) as api:
        yield api
