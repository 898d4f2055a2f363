"""A study as a team reads it: every variant with its job, metric, rank and change against the base.

Changes are computed when read, from the predictions the evaluate stage stored for each job: the API
has the object store at hand, and a paired bootstrap over a test set takes milliseconds.
"""

from __future__ import annotations

import uuid
from typing import Any

from shared.db.models import Job, Study, StudyVariant
from shared.pipeline.evaluate.significance import BOOTSTRAP_METRICS
from shared.storage.base import ObjectStore
from shared.storage.errors import ObjectNotFound
from shared.studies.ranking import (
    Change,
    compare,
    describe_change,
    finished_values,
    load_predictions,
    point_change,
    rank,
)
from shared.studies.repository import VariantRow
from shared.studies.variants import lookup


def variant_status(study: Study, variant: StudyVariant, job: Job | None) -> str:
    if variant.error is not None:
        return "failed"
    if job is None:
        return "cancelled" if study.status == "cancelled" else "pending"
    return str(job.status)


def study_view(study: Study, rows: list[VariantRow], store: ObjectStore) -> dict[str, Any]:
    values = finished_values(rows, study.metric)
    ranks = rank(values, study.direction)
    changes = _changes(study, rows, values, store)
    return {
        **study_summary(study, len(rows)),
        "base_spec": study.base_spec,
        "variants_spec": study.variants_spec,
        "result": study.result,
        "variants": [
            {
                "position": variant.position,
                "overrides": variant.overrides,
                "status": variant_status(study, variant, job),
                "job_id": job.id if job is not None else None,
                "job_status": job.status if job is not None else None,
                "metric_value": values.get(variant.position),
                "rank": ranks.get(variant.position),
                "error": _error(variant, job),
                "change": changes[variant.position].as_dict() if variant.position in changes else None,
                "change_summary": (
                    describe_change(study.base_spec, variant.overrides, changes[variant.position])
                    if variant.position in changes
                    else None
                ),
            }
            for variant, job in rows
        ],
    }


def study_summary(study: Study, variant_count: int) -> dict[str, Any]:
    ranking = study.result.get("ranking") or []
    return {
        "id": study.id,
        "name": study.name,
        "status": study.status,
        "mode": study.variants_spec.get("mode"),
        "metric": study.metric,
        "direction": study.direction,
        "max_concurrency": study.max_concurrency,
        "trial_budget": study.trial_budget,
        "variant_count": variant_count,
        "best": ranking[0] if ranking else None,
        "created_at": study.created_at,
        "updated_at": study.updated_at,
    }


def _changes(
    study: Study, rows: list[VariantRow], values: dict[int, float], store: ObjectStore
) -> dict[int, Change]:
    """Each finished variant against the base variant (position 0), when the base finished too."""
    base_variant, base_job = rows[0]
    if base_variant.position not in values or base_job is None:
        return {}
    resamples = int(lookup(study.base_spec, "evaluation.bootstrap_resamples") or 1000)
    seed = int(lookup(study.base_spec, "hyperparameters.seed") or 0)
    base_rows = _predictions(store, base_job.id)
    changes: dict[int, Change] = {}
    for variant, job in rows[1:]:
        if variant.position not in values or job is None:
            continue
        if study.metric not in BOOTSTRAP_METRICS:
            rows_scored = int((job.result.get("evaluation") or {}).get("rows") or 0)
            changes[variant.position] = point_change(
                values[base_variant.position], values[variant.position], study.metric, rows_scored
            )
            continue
        variant_rows = _predictions(store, job.id)
        if base_rows is None or variant_rows is None:
            continue
        change = compare(base_rows, variant_rows, study.metric, resamples, seed)
        if change is not None:
            changes[variant.position] = change
    return changes


def _predictions(store: ObjectStore, job_id: uuid.UUID) -> list[dict[str, Any]] | None:
    try:
        return load_predictions(store, job_id)
    except ObjectNotFound:
        return None


def _error(variant: StudyVariant, job: Job | None) -> dict[str, Any] | None:
    if variant.error is not None:
        return {"code": "invalid_variant", "message": variant.error}
    if job is not None and job.error_code:
        return {"code": job.error_code, "message": job.error_message, "stage": job.error_stage}
    return None
