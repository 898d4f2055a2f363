"""Variants of a base spec: overrides laid over it, checked as a whole JobSpec one by one.

Overrides are stored nested (`{"hyperparameters": {"learning_rate": 3e-4}}`) however they were
written; dotted keys are expanded first. A variant whose merged spec is invalid is not an error of
the study: it is recorded with the reason and the other variants still run.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared.jobs.spec import JobSpec
from shared.studies.spec import GridVariants, ListVariants


@dataclass(frozen=True)
class VariantPlan:
    """One variant before it is stored: its overrides and either the merged spec or why it has none."""

    overrides: dict[str, Any]
    spec: JobSpec | None
    error: str | None


def expand_dotted(overrides: dict[str, Any]) -> dict[str, Any]:
    """`{"a.b": 1, "a": {"c": 2}}` → `{"a": {"b": 1, "c": 2}}`."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        target = nested
        for parent in parents:
            child = target.setdefault(parent, {})
            if not isinstance(child, dict):
                raise ValueError(f"'{key}' goes inside '{parent}', which is also given a plain value")
            target = child
        value = expand_dotted(value) if isinstance(value, dict) else value
        if isinstance(target.get(leaf), dict) and isinstance(value, dict):
            target[leaf] = deep_merge(target[leaf], value)
        else:
            target[leaf] = value
    return nested


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `overrides` laid over it; nested mappings merge, anything else replaces."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def flatten(overrides: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested overrides as dotted leaf paths, in the order given (how a change is described)."""
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def lookup(spec: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of a spec dump, or None where a parent is missing or null."""
    value: Any = spec
    for segment in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(segment)
    return value


def plan_variant(base_spec: JobSpec, overrides: dict[str, Any]) -> VariantPlan:
    """Merge and validate one variant; an invalid one comes back with its reason, never raised."""
    try:
        nested = expand_dotted(overrides)
    except ValueError as exc:
        return VariantPlan(overrides=overrides, spec=None, error=str(exc))
    merged = deep_merge(base_spec.model_dump(mode="json"), nested)
    try:
        spec = JobSpec.model_validate(merged)
    except ValidationError as exc:
        return VariantPlan(overrides=nested, spec=None, error=_describe(exc))
    if spec.evaluation is None:
        return VariantPlan(
            overrides=nested, spec=None, error="evaluation: must stay on, the study ranks by its metric"
        )
    return VariantPlan(overrides=nested, spec=spec, error=None)


def plan_variants(base_spec: JobSpec, variants: ListVariants | GridVariants) -> list[VariantPlan]:
    """Variant 0 is the base spec itself; the listed or grid variants follow in order."""
    return [plan_variant(base_spec, {})] + [
        plan_variant(base_spec, overrides) for overrides in variant_overrides(variants)
    ]


def variant_overrides(variants: ListVariants | GridVariants) -> list[dict[str, Any]]:
    if isinstance(variants, ListVariants):
        return list(variants.overrides)
    paths = list(variants.grid)
    return [
        dict(zip(paths, values, strict=True))
        for values in itertools.product(*(variants.grid[path] for path in paths))
    ]


def _describe(error: ValidationError) -> str:
    reasons = []
    for entry in error.errors():
        location = ".".join(str(part) for part in entry.get("loc", ()))
        reasons.append(f"{location}: {entry.get('msg')}" if location else str(entry.get("msg")))
    return "; ".join(reasons)
