"""The Grafana dashboard plots only metrics the code exports: a renamed metric breaks this test, not
a panel that silently goes blank."""

from __future__ import annotations

import json
import re

from prometheus_client import REGISTRY

import shared.observability  # noqa: F401  (registers every metric of the API and the workers)
from tests.support.stack import REPO_ROOT

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "temper.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported_series() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def test_every_temper_metric_on_the_dashboard_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    used = {name for expr in expressions for name in re.findall(r"\btemper_[a-z_]+", expr)}
    assert used, "the dashboard plots no Temper metric"
    assert used - exported_series() == set()
    # Panels for what the workers export, not only the API.
    for worker_metric in (
        "temper_heartbeats_total",
        "temper_train_samples_per_second",
        "temper_reaper_actions_total",
    ):
        assert worker_metric in used
