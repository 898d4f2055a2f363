"""The promotion gate: does the evaluated model meet the job's bar for publishing?

A gate is plain data carried by the job, for example
`{"metric": "f1_macro", "min": 0.85, "better_than_baseline": true, "max_drop": 0.01}` or, for an
instruction-tuned LM, `{"metric": "perplexity", "max": 12, "better_than_baseline": true}`.
"Better than the baseline" means significantly better on the same rows: for accuracy, McNemar's
test on per-row correctness; for the other bootstrapped metrics, the paired bootstrap interval of
the difference lying wholly on the better side of zero. A metric without a significance test
cannot carry that condition, which the spec refuses up front rather than at publish time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.pipeline.evaluate.metric_names import ALL_BOOTSTRAP_METRICS, ALL_SUMMARY_METRICS, LOWER_IS_BETTER
from shared.text import Text


class GateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: Text
    min: float | None = None
    max: float | None = None
    better_than_baseline: bool = False
    # How much worse than the baseline the metric may be (absolute), e.g. 0.01 for one point of F1.
    max_drop: float | None = Field(None, ge=0.0)

    @model_validator(mode="after")
    def _known_metric_and_sensible_bounds(self) -> GateSpec:
        if self.metric not in ALL_SUMMARY_METRICS:
            raise ValueError(f"unknown gate metric {self.metric!r}; choose from {list(ALL_SUMMARY_METRICS)}")
        if self.better_than_baseline and self.metric not in ALL_BOOTSTRAP_METRICS:
            raise ValueError(
                f"better_than_baseline needs a significance test, which {self.metric!r} lacks; "
                f"use one of {list(ALL_BOOTSTRAP_METRICS)}"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"gate min {self.min} is above max {self.max}")
        return self


@dataclass(frozen=True)
class GateResult:
    passed: bool
    # One line per condition checked, passed or failed, each naming the metric, value and threshold.
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": list(self.reasons)}


def evaluate_gate(
    gate: GateSpec | dict[str, Any], metrics: dict[str, float | None], comparison: dict[str, Any] | None
) -> GateResult:
    """Check every condition of `gate` against the report's metrics and the baseline comparison."""
    spec = gate if isinstance(gate, GateSpec) else GateSpec.model_validate(gate)
    checks: list[tuple[bool, str]] = []
    value = metrics.get(spec.metric)
    if value is None:
        if spec.min is not None or spec.max is not None:
            checks.append(
                (False, f"failed: {spec.metric} is undefined on these rows, so its bounds cannot be checked")
            )
    else:
        if spec.min is not None:
            met = value >= spec.min
            checks.append(
                (met, f"{_word(met)}: {spec.metric} = {value:.4f}, required at least {spec.min:.4f}")
            )
        if spec.max is not None:
            met = value <= spec.max
            checks.append(
                (met, f"{_word(met)}: {spec.metric} = {value:.4f}, required at most {spec.max:.4f}")
            )
    if spec.better_than_baseline or spec.max_drop is not None:
        if comparison is None:
            checks.append(
                (False, "failed: the gate compares with a baseline, but no baseline comparison was made")
            )
        else:
            checks.extend(_baseline_checks(spec, comparison))
    return GateResult(passed=all(met for met, _ in checks), reasons=[reason for _, reason in checks])


def _baseline_checks(spec: GateSpec, comparison: dict[str, Any]) -> list[tuple[bool, str]]:
    figures = comparison["metrics"][spec.metric]
    baseline = comparison["baseline"]
    delta = figures["delta"]
    checks: list[tuple[bool, str]] = []
    if delta is None:
        return [(False, f"failed: {spec.metric} delta against {baseline} is undefined on these rows")]
    # Orient the delta so that a positive number always means "the candidate is better".
    improvement = -delta if spec.metric in LOWER_IS_BETTER else delta
    if spec.max_drop is not None:
        met = improvement >= -spec.max_drop
        checks.append(
            (
                met,
                f"{_word(met)}: {spec.metric} = {figures['candidate']:.4f} vs {baseline} "
                f"{figures['baseline']:.4f} (delta {delta:+.4f}), allowed drop at most {spec.max_drop:.4f}",
            )
        )
    if spec.better_than_baseline:
        confidence = comparison["bootstrap"]["confidence"]
        alpha = 1.0 - confidence
        interval = figures["delta_interval"]
        interval_text = f"{confidence:.0%} CI of delta [{interval['low']:+.4f}, {interval['high']:+.4f}]"
        # The interval's bound nearest to "no better": low for higher-is-better, high for lower.
        worst_improvement = -interval["high"] if spec.metric in LOWER_IS_BETTER else interval["low"]
        if spec.metric == "accuracy":
            test = comparison["mcnemar"]
            met = improvement > 0 and test["p_value"] < alpha
            evidence = f"McNemar p = {test['p_value']:.4g} ({test['method']}), required p < {alpha:.2g}; {interval_text}"
        else:
            met = improvement > 0 and worst_improvement > 0
            side = "below" if spec.metric in LOWER_IS_BETTER else "above"
            evidence = f"{interval_text} required {side} 0"
            if "mcnemar" in comparison:
                evidence += f"; McNemar p = {comparison['mcnemar']['p_value']:.4g} on per-row correctness"
            elif comparison.get("significance"):
                test = comparison["significance"]
                evidence += f"; {test['method']}: p = {test['p_value']:.4g}"
        checks.append(
            (
                met,
                f"{_word(met)}: {spec.metric} = {figures['candidate']:.4f} vs {baseline} "
                f"{figures['baseline']:.4f} (delta {delta:+.4f}) must be significantly better; {evidence}",
            )
        )
    return checks


def _word(met: bool) -> str:
    return "passed" if met else "failed"
