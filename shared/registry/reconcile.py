"""Triton serves what the registry says, also after a restart.

Triton runs with explicit model control: a restarted Triton loads nothing by itself. The reconciler
compares what Triton has loaded (its repository index) with the registry's production versions and
loads, in dependency order, every model of a production set that is not loaded at exactly that
version. It is idempotent: with everything in place it loads nothing. Each reload is logged as a
`triton.reloaded` event and counted in `temper_triton_reloads_total`. Celery beat runs it every
`TEMPER_TRITON_RECONCILE_INTERVAL` (`services/worker/periodic.py`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog
from sqlalchemy.orm import Session, sessionmaker

from shared.errors import TransientError
from shared.observability import TRITON_RELOADS
from shared.registry.repository import RegistryRepository
from shared.registry.triton import published_models
from shared.serving.triton_config import config_from_text
from shared.serving.triton_control import TritonControl
from shared.storage.base import ObjectStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Reload:
    """One production set that was not (fully) served: what was loaded, or why it could not be."""

    repository_name: str
    version: int
    loaded: list[str]
    error: str | None = None


@dataclass(frozen=True)
class ReconcileReport:
    production_sets: int
    reloads: list[Reload] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def reconcile_triton(
    session_factory: sessionmaker[Session], control: TritonControl, repository: ObjectStore
) -> ReconcileReport:
    """Load on Triton whatever of the production versions it is not serving.

    Raises TransientError when Triton does not answer (it may be starting): the next run tries again.
    """
    with session_factory() as session:
        production = [
            (model.repository_name, version.version, list(version.formats))
            for model, version in RegistryRepository(session).production_versions()
        ]
    ready: dict[str, set[str]] = defaultdict(set)
    for entry in control.repository_index():
        if entry.state == "READY":
            ready[entry.name].add(entry.version)

    reloads = []
    for repository_name, version, formats in production:
        # Pinned to exactly the production version: another version loaded beside it (or instead)
        # would be what the ensemble's "latest" step picks.
        stale = [
            model for model in published_models(repository_name, formats) if ready[model] != {str(version)}
        ]
        if not stale:
            continue
        loaded: list[str] = []
        try:
            # Composing models first, the ensemble last: loading an ensemble loads missing steps at
            # their repository version policy, not at the production version.
            for model in stale:
                config = config_from_text(repository.get_bytes(f"{model}/config.pbtxt").decode())
                control.load_version(model, config, version)
                loaded.append(model)
        except TransientError:
            raise
        except Exception as error:
            reloads.append(Reload(repository_name, version, loaded, error=f"{type(error).__name__}: {error}"))
            TRITON_RELOADS.labels(outcome="failed").inc()
            log.error(
                "triton.reload_failed",
                model=repository_name,
                version=version,
                loaded=loaded,
                error=str(error),
            )
            continue
        reloads.append(Reload(repository_name, version, loaded))
        TRITON_RELOADS.labels(outcome="reloaded").inc()
        log.info("triton.reloaded", model=repository_name, version=version, loaded=loaded)
    return ReconcileReport(production_sets=len(production), reloads=reloads)
