"""How variants compare: their rank by the study metric, and what each change did against the base.

The change of a variant is measured on the same test rows as the base variant (joined by row id
from both jobs' stored predictions), with a paired bootstrap interval of the metric's difference:
both models are scored on the same resampled rows, which is what makes a small difference readable.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from shared.jobs.layout import JobLayout
from shared.jobs.states import JobStatus
from shared.pipeline.evaluate.significance import BOOTSTRAP_METRICS, paired_bootstrap
from shared.storage.base import ObjectStore
from shared.studies.repository import VariantRow
from shared.studies.variants import flatten, lookup

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Change:
    """A variant's metric minus the base variant's, on the rows both were scored on."""

    metric: str
    delta: float
    low: float | None
    high: float | None
    confidence: float
    rows: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def metric_value(job_result: dict[str, Any], metric: str) -> float | None:
    """The study metric from a job's evaluation summary, or None when the job has none."""
    value = (job_result.get("evaluation") or {}).get("metrics", {}).get(metric)
    return float(value) if value is not None else None


def finished_values(rows: list[VariantRow], metric: str) -> dict[int, float]:
    """The metric of each variant whose job succeeded with it, by position: what gets ranked."""
    values: dict[int, float] = {}
    for variant, job in rows:
        if job is None or job.status != JobStatus.SUCCEEDED:
            continue
        value = metric_value(job.result, metric)
        if value is not None:
            values[variant.position] = value
    return values


def rank(values: dict[int, float], direction: str) -> dict[int, int]:
    """Rank of each variant position, 1 the best; equal values share a rank (1, 2, 2, 4)."""
    sign = -1.0 if direction == "maximize" else 1.0
    return {
        position: 1 + sum(1 for other in values.values() if sign * other < sign * value)
        for position, value in values.items()
    }


def load_predictions(store: ObjectStore, job_id: uuid.UUID) -> list[dict[str, Any]]:
    content = store.get_bytes(JobLayout(job_id).evaluation_file("predictions.jsonl")).decode("utf-8")
    return [json.loads(line) for line in content.splitlines() if line.strip()]


def compare(
    base_rows: list[dict[str, Any]],
    variant_rows: list[dict[str, Any]],
    metric: str,
    resamples: int,
    seed: int,
) -> Change | None:
    """The paired bootstrap change of `metric` on the rows both predicted; None if they share none."""
    if metric not in BOOTSTRAP_METRICS:
        raise ValueError(f"no paired bootstrap for {metric!r}; it has {BOOTSTRAP_METRICS}")
    base_by_id = {row["row_id"]: row for row in base_rows}
    shared_rows = [(base_by_id[row["row_id"]], row) for row in variant_rows if row["row_id"] in base_by_id]
    if not shared_rows:
        return None
    labels = sorted(
        {row[key] for pair in shared_rows for row in pair for key in ("true_label", "predicted_label")}
    )
    index = {label: position for position, label in enumerate(labels)}
    y_true = np.array([index[variant["true_label"]] for _, variant in shared_rows])
    base_pred = np.array([index[base["predicted_label"]] for base, _ in shared_rows])
    variant_pred = np.array([index[variant["predicted_label"]] for _, variant in shared_rows])
    interval = paired_bootstrap(
        y_true, variant_pred, base_pred, len(labels), n_resamples=resamples, seed=seed, confidence=CONFIDENCE
    )[metric]["delta"]
    return Change(
        metric=metric,
        delta=interval.estimate,
        low=interval.low,
        high=interval.high,
        confidence=CONFIDENCE,
        rows=len(shared_rows),
    )


def point_change(base_value: float, variant_value: float, metric: str, rows: int) -> Change:
    """For metrics the paired bootstrap does not cover (ece, roc_auc): the difference, no interval."""
    return Change(
        metric=metric, delta=variant_value - base_value, low=None, high=None, confidence=CONFIDENCE, rows=rows
    )


def describe_change(base_spec: dict[str, Any], overrides: dict[str, Any], change: Change) -> str:
    """One line a person reads: `learning_rate 0.0001 → 0.0003: f1_macro +0.042 [+0.010, +0.071]`."""
    edits = [
        f"{path.rsplit('.', 1)[-1]} {_format(lookup(base_spec, path))} → {_format(value)}"
        for path, value in flatten(overrides).items()
    ]
    what = ", ".join(edits) or "no change"
    interval = (
        f" [{change.low:+.3f}, {change.high:+.3f}]"
        if change.low is not None and change.high is not None
        else ""
    )
    return f"{what}: {change.metric} {change.delta:+.3f}{interval}"


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "none"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
