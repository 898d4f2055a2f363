"""The worker of `bench/embedded_broker.py`: Temper's worker app, on the broker the bench names.

`celery -A bench.embedded_broker_worker worker`: adds the bench's atomic filesystem transport
(`atomic-filesystem://`), gives both filesystem transports the embedded broker's polling interval so
that every candidate is timed on equal terms, and loads the test-only probe task.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

from services.worker.app import celery_app, settings
from shared.embedded_broker import POLL_INTERVAL_S
from shared.settings import Settings


class AtomicChannel(filesystem.Channel):  # type: ignore[misc]
    """kombu's filesystem channel writing each message under a temporary name, then renaming it."""

    def _put(self, queue: str, payload: dict[str, Any], **_: Any) -> None:
        name = f"{int(filesystem.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        temporary = os.path.join(self.data_folder_out, "." + name + ".part")
        with open(temporary, "wb") as handle:
            handle.write(str_to_bytes(dumps(payload)))
        os.replace(temporary, final)


class AtomicTransport(filesystem.Transport):  # type: ignore[misc]
    Channel = AtomicChannel


TRANSPORT_ALIASES["atomic-filesystem"] = f"{__name__}:AtomicTransport"


def filesystem_options(settings: Settings) -> dict[str, object]:
    folder = settings.broker_directory / "queue"
    for name in ("queue", "processed", "control"):
        (settings.broker_directory / name).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "processed_folder": str(settings.broker_directory / "processed"),
        "control_folder": str(settings.broker_directory / "control"),
        "store_processed": False,
    }


if "filesystem" in settings.resolved_broker_url:
    celery_app.conf.broker_transport_options = {
        **filesystem_options(settings),
        "polling_interval": POLL_INTERVAL_S,
    }

app = celery_app

import tests.support.broker_probe_task  # noqa: E402, F401  (the probe task, on this app)
