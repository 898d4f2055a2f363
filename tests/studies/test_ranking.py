"""Ranking by the study metric and the paired-bootstrap change against the base variant."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from shared.jobs.spec import JobSpec
from shared.studies.ranking import compare, describe_change, point_change, rank


def predictions(true: list[str], predicted: list[str], offset: int = 0) -> list[dict]:
    return [
        {"row_id": offset + index, "true_label": label, "predicted_label": guess}
        for index, (label, guess) in enumerate(zip(true, predicted, strict=True))
    ]


def test_rank_follows_the_direction_and_shares_ties() -> None:
    values = {0: 0.70, 1: 0.82, 2: 0.70, 3: 0.91}
    assert rank(values, "maximize") == {3: 1, 1: 2, 0: 3, 2: 3}
    assert rank(values, "minimize") == {0: 1, 2: 1, 1: 3, 3: 4}


def test_a_clearly_better_variant_has_an_interval_above_zero() -> None:
    rng = np.random.default_rng(0)
    true = list(rng.choice(["a", "b", "c"], size=300))
    # The base is right on a third of the rows, the variant on nine tenths of them.
    base = [label if index % 3 == 0 else "a" if label != "a" else "b" for index, label in enumerate(true)]
    variant = [label if index % 10 else "c" if label != "c" else "a" for index, label in enumerate(true)]
    change = compare(predictions(true, base), predictions(true, variant), "accuracy", 500, 0)
    assert change is not None and change.rows == 300
    expected = np.mean(np.array(variant) == np.array(true)) - np.mean(np.array(base) == np.array(true))
    assert change.delta == pytest.approx(expected)
    assert 0 < change.low < change.delta < change.high


def test_identical_predictions_change_nothing() -> None:
    true = ["a", "b"] * 50
    guesses = ["a", "a"] * 50
    change = compare(predictions(true, guesses), predictions(true, guesses), "f1_macro", 200, 0)
    assert change is not None and change.delta == change.low == change.high == 0.0


def test_rows_are_joined_by_id_not_position() -> None:
    true = ["a", "b", "a", "b"]
    base = predictions(true, true)
    # The same correct predictions in another order, plus a row the base never saw.
    variant = [*reversed(base), {"row_id": 99, "true_label": "a", "predicted_label": "b"}]
    change = compare(base, variant, "accuracy", 200, 0)
    assert change is not None and change.rows == 4 and change.delta == 0.0
    assert compare(base, predictions(true, true, offset=100), "accuracy", 200, 0) is None


def test_the_plain_line_names_the_change_and_its_interval() -> None:
    base = JobSpec.model_validate({"base_model": "m", "train_dataset_id": str(uuid.uuid4())})
    base = base.model_copy(
        update={"hyperparameters": base.hyperparameters.model_copy(update={"learning_rate": 1e-4})}
    )
    true = ["a", "b"] * 40
    change = compare(predictions(true, ["a"] * 80), predictions(true, true), "f1_macro", 200, 0)
    assert change is not None
    line = describe_change(
        base.model_dump(mode="json"), {"hyperparameters": {"learning_rate": 3e-4}, "method": "lora"}, change
    )
    assert line.startswith("learning_rate 0.0001 → 0.0003, method full → lora: f1_macro +")
    assert f"[{change.low:+.3f}, {change.high:+.3f}]" in line


def test_metrics_without_a_bootstrap_get_a_point_change() -> None:
    change = point_change(0.12, 0.05, "ece", rows=30)
    assert change.delta == pytest.approx(-0.07) and change.low is None
    assert describe_change({}, {"method": "lora"}, change) == "method none → lora: ece -0.070"
    with pytest.raises(ValueError, match="ece"):
        compare([], [], "ece", 200, 0)
