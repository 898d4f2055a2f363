from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from shared.pipeline.evaluate.baseline import compare
from shared.pipeline.evaluate.gate import GateSpec, evaluate_gate

LABELS = ["negative", "positive"]


def one_hot(indices: np.ndarray) -> np.ndarray:
    probabilities = np.full((len(indices), 2), 0.1)
    probabilities[np.arange(len(indices)), indices] = 0.9
    return probabilities


def comparison_of(candidate_accuracy: float, baseline_accuracy: float) -> dict:
    """Candidate and baseline right on about the given shares of the same 400 rows."""
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, 400)
    candidate = np.where(rng.random(400) < candidate_accuracy, y_true, 1 - y_true)
    baseline = np.where(rng.random(400) < baseline_accuracy, y_true, 1 - y_true)
    return compare(
        [LABELS[i] for i in y_true],
        one_hot(candidate),
        one_hot(baseline),
        LABELS,
        baseline_name="production v3",
    )


@pytest.fixture(scope="module")
def better_comparison() -> dict:
    return comparison_of(0.9, 0.6)


def test_gate_passes_with_reasons_naming_metric_value_threshold_and_p_value(better_comparison: dict) -> None:
    metrics = {name: figures["candidate"] for name, figures in better_comparison["metrics"].items()}
    result = evaluate_gate(
        {"metric": "f1_macro", "min": 0.85, "better_than_baseline": True}, metrics, better_comparison
    )
    assert result.passed
    minimum, significance = result.reasons
    assert minimum.startswith("passed: f1_macro = ") and "at least 0.8500" in minimum
    assert (
        "production v3" in significance and "McNemar p = " in significance and "CI of delta" in significance
    )


def test_gate_fails_below_the_minimum_and_says_by_how_much(better_comparison: dict) -> None:
    metrics = {name: figures["candidate"] for name, figures in better_comparison["metrics"].items()}
    result = evaluate_gate({"metric": "accuracy", "min": 0.99}, metrics, better_comparison)
    assert not result.passed
    assert result.reasons == [f"failed: accuracy = {metrics['accuracy']:.4f}, required at least 0.9900"]


def test_gate_fails_when_the_candidate_is_worse_than_the_baseline() -> None:
    worse = comparison_of(0.6, 0.9)
    metrics = {name: figures["candidate"] for name, figures in worse["metrics"].items()}
    result = evaluate_gate(
        {"metric": "accuracy", "better_than_baseline": True, "max_drop": 0.01}, metrics, worse
    )
    assert not result.passed
    drop, significance = result.reasons
    assert drop.startswith("failed: accuracy") and "allowed drop at most 0.0100" in drop
    assert significance.startswith("failed: accuracy") and "McNemar p = " in significance


def test_max_drop_lets_an_equal_model_through() -> None:
    y_true = ["negative", "positive"] * 50
    same = one_hot(np.array([0, 1] * 50))
    comparison = compare(y_true, same, same, LABELS)
    metrics = {name: figures["candidate"] for name, figures in comparison["metrics"].items()}
    assert evaluate_gate({"metric": "f1_macro", "max_drop": 0.0}, metrics, comparison).passed
    # Equal is not significantly better.
    assert not evaluate_gate({"metric": "f1_macro", "better_than_baseline": True}, metrics, comparison).passed


def test_gate_that_needs_a_baseline_fails_without_one() -> None:
    result = evaluate_gate({"metric": "accuracy", "better_than_baseline": True}, {"accuracy": 0.9}, None)
    assert not result.passed
    assert "no baseline comparison" in result.reasons[0]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"metric": "f1_macr", "min": 0.8}, "unknown gate metric 'f1_macr'"),
        ({"metric": "roc_auc", "better_than_baseline": True}, "needs a significance test"),
        ({"metric": "f1_macro", "min": 0.9, "max": 0.8}, "above max"),
        ({"metric": "f1_macro", "minimum": 0.9}, "Extra inputs"),
    ],
)
def test_invalid_gate_specs_are_refused(spec: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GateSpec.model_validate(spec)


def test_lower_is_better_metric_gates_with_max() -> None:
    result = evaluate_gate({"metric": "ece", "max": 0.05}, {"ece": 0.08}, None)
    assert not result.passed
    assert result.reasons == ["failed: ece = 0.0800, required at most 0.0500"]
