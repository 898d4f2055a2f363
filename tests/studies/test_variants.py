"""Variant generation: list and grid overrides, dotted paths, limits, invalid variants recorded."""

from __future__ import annotations

import re
import uuid

import pytest
from pydantic import ValidationError

from shared.jobs.spec import JobSpec
from shared.studies.spec import MAX_VARIANTS, StudySpec
from shared.studies.variants import deep_merge, expand_dotted, flatten, plan_variants

BASE = {"base_model": "tiny-bert", "train_dataset_id": str(uuid.uuid4())}


def study(variants: dict, **extra: object) -> StudySpec:
    return StudySpec.model_validate({"base_spec": BASE, "variants": variants, **extra})


def test_dotted_and_nested_overrides_mean_the_same() -> None:
    dotted = expand_dotted({"hyperparameters.learning_rate": 3e-4, "hyperparameters.lora.r": 4})
    nested = expand_dotted({"hyperparameters": {"learning_rate": 3e-4, "lora": {"r": 4}}})
    assert dotted == nested == {"hyperparameters": {"learning_rate": 3e-4, "lora": {"r": 4}}}
    assert flatten(dotted) == {"hyperparameters.learning_rate": 3e-4, "hyperparameters.lora.r": 4}


def test_merge_keeps_sibling_fields_of_the_base() -> None:
    base = JobSpec.model_validate(BASE).model_dump(mode="json")
    merged = deep_merge(base, {"hyperparameters": {"learning_rate": 3e-4}})
    assert merged["hyperparameters"]["learning_rate"] == 3e-4
    assert merged["hyperparameters"]["batch_size"] == base["hyperparameters"]["batch_size"]
    assert base["hyperparameters"]["learning_rate"] == 5e-5  # the base itself is untouched


def test_grid_is_the_cartesian_product_after_the_base() -> None:
    spec = study(
        {"mode": "grid", "grid": {"hyperparameters.learning_rate": [1e-4, 3e-4], "method": ["full", "lora"]}}
    )
    plans = plan_variants(spec.base_spec, spec.variants)
    assert spec.trial_budget == 4
    assert [plan.overrides for plan in plans] == [
        {},
        {"hyperparameters": {"learning_rate": 1e-4}, "method": "full"},
        {"hyperparameters": {"learning_rate": 1e-4}, "method": "lora"},
        {"hyperparameters": {"learning_rate": 3e-4}, "method": "full"},
        {"hyperparameters": {"learning_rate": 3e-4}, "method": "lora"},
    ]
    assert plans[0].spec == spec.base_spec
    assert plans[4].spec is not None and plans[4].spec.method == "lora"
    assert plans[4].spec.hyperparameters.learning_rate == 3e-4


def test_an_invalid_variant_is_recorded_not_raised() -> None:
    spec = study(
        {
            "mode": "list",
            "overrides": [
                {"hyperparameters.learning_rate": -1},
                {"hyperparameters": {"epochs": 1}},
                {"evaluation": None},
            ],
        }
    )
    base, broken, fine, unevaluated = plan_variants(spec.base_spec, spec.variants)
    assert base.error is None and fine.error is None and fine.spec is not None
    assert broken.spec is None and "learning_rate" in (broken.error or "")
    assert unevaluated.spec is None and "evaluation" in (unevaluated.error or "")


def test_grid_paths_must_name_spec_fields() -> None:
    with pytest.raises(ValidationError, match=re.escape("hyperparameters has [")):
        study({"mode": "grid", "grid": {"hyperparameters.lr": [1e-4]}})
    with pytest.raises(ValidationError, match=re.escape("method has []")):
        study({"mode": "grid", "grid": {"method.learning_rate": [1e-4]}})


def test_grid_and_list_sizes_are_limited() -> None:
    too_big = {
        "hyperparameters.learning_rate": [1e-4 * (i + 1) for i in range(9)],
        "hyperparameters.seed": list(range(8)),
    }
    with pytest.raises(ValidationError, match=f"at most {MAX_VARIANTS}"):
        study({"mode": "grid", "grid": too_big})
    with pytest.raises(ValidationError, match=f"at most {MAX_VARIANTS}"):
        study({"mode": "list", "overrides": [{"hyperparameters.seed": i} for i in range(MAX_VARIANTS + 1)]})


def test_metric_must_be_a_summary_metric() -> None:
    with pytest.raises(ValidationError, match="f1_macro"):
        study({"mode": "list", "overrides": [{}]}, metric="loss")


def test_search_space_is_checked() -> None:
    space = {"hyperparameters.learning_rate": {"type": "float", "low": 0, "high": 1e-3, "log": True}}
    with pytest.raises(ValidationError, match="log scale"):
        study({"mode": "search", "space": space, "trials": 3})
    with pytest.raises(ValidationError, match="above high"):
        study(
            {
                "mode": "search",
                "space": {"hyperparameters.epochs": {"type": "int", "low": 3, "high": 1}},
                "trials": 3,
            }
        )
