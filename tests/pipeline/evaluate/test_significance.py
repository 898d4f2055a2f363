from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from shared.pipeline.evaluate.significance import (
    bootstrap_ci,
    bootstrap_resamples,
    mcnemar,
    paired_bootstrap,
    resampled_metrics,
)


def noisy_predictions(rows: int, n_labels: int, accuracy: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, n_labels, rows)
    wrong = rng.random(rows) > accuracy
    y_pred = np.where(wrong, (y_true + rng.integers(1, n_labels, rows)) % n_labels, y_true)
    return y_true, y_pred


def test_vectorized_resample_metrics_match_scikit_learn_on_each_resample() -> None:
    y_true, y_pred = noisy_predictions(300, 6, 0.6, seed=1)
    resamples = bootstrap_resamples(len(y_true), 5, seed=3)
    metrics = resampled_metrics(y_true, y_pred, 6, resamples)
    for index, rows in enumerate(resamples):
        sample_true, sample_pred = y_true[rows], y_pred[rows]
        assert metrics["accuracy"][index] == pytest.approx(accuracy_score(sample_true, sample_pred))
        for name, scorer in (("f1", f1_score), ("precision", precision_score), ("recall", recall_score)):
            expected = scorer(sample_true, sample_pred, average="macro", zero_division=0)
            assert metrics[f"{name}_macro"][index] == pytest.approx(expected), name
        weighted = f1_score(sample_true, sample_pred, average="weighted", zero_division=0)
        assert metrics["f1_weighted"][index] == pytest.approx(weighted)


@pytest.mark.parametrize("metric", ["accuracy", "f1_macro"])
def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_rows(metric: str) -> None:
    widths = []
    for rows in (100, 2000):
        y_true, y_pred = noisy_predictions(rows, 4, 0.7, seed=rows)
        interval = bootstrap_ci(y_true, y_pred, 4, metric=metric, n_resamples=1000, seed=0)
        assert interval.low <= interval.estimate <= interval.high
        assert interval.low < interval.high
        widths.append(interval.high - interval.low)
    # The width shrinks like 1/sqrt(rows): 20 times the rows gives about a 4.5 times narrower interval.
    assert widths[1] < widths[0] / 3


def test_bootstrap_is_reproducible_per_seed() -> None:
    y_true, y_pred = noisy_predictions(200, 3, 0.7, seed=5)
    first = bootstrap_ci(y_true, y_pred, 3, seed=11)
    assert bootstrap_ci(y_true, y_pred, 3, seed=11) == first
    assert bootstrap_ci(y_true, y_pred, 3, seed=12) != first


def test_paired_bootstrap_separates_a_better_model_and_not_an_identical_one() -> None:
    y_true, weak = noisy_predictions(800, 5, 0.6, seed=2)
    strong = np.where(np.random.default_rng(9).random(800) < 0.5, y_true, weak)
    better = paired_bootstrap(y_true, strong, weak, 5, seed=0)
    for metric in ("accuracy", "f1_macro"):
        delta = better[metric]["delta"]
        assert delta.estimate == pytest.approx(
            better[metric]["candidate"].estimate - better[metric]["baseline"].estimate
        )
        assert delta.low > 0
    same = paired_bootstrap(y_true, weak, weak, 5, seed=0)
    assert same["accuracy"]["delta"].low == same["accuracy"]["delta"].high == 0.0


def correctness_pairs(only_candidate: int, only_baseline: int, both: int = 30, neither: int = 10):
    candidate = [True] * only_candidate + [False] * only_baseline + [True] * both + [False] * neither
    baseline = [False] * only_candidate + [True] * only_baseline + [True] * both + [False] * neither
    return np.array(candidate), np.array(baseline)


def test_mcnemar_exact_binomial_for_few_discordant_rows() -> None:
    result = mcnemar(*correctness_pairs(6, 16))
    expected = 2 * sum(math.comb(22, k) for k in range(7)) / 2**22
    assert result["method"] == "exact binomial"
    assert (result["only_candidate_correct"], result["only_baseline_correct"]) == (6, 16)
    assert result["p_value"] == pytest.approx(expected, rel=1e-9)


def test_mcnemar_chi_square_with_continuity_correction_for_many_discordant_rows() -> None:
    result = mcnemar(*correctness_pairs(40, 20))
    statistic = (abs(40 - 20) - 1) ** 2 / 60
    assert result["method"] == "chi-square with continuity correction"
    assert result["statistic"] == pytest.approx(statistic)
    # Survival function of chi-square with one degree of freedom.
    assert result["p_value"] == pytest.approx(math.erfc(math.sqrt(statistic / 2)), rel=1e-9)


def test_mcnemar_without_discordant_rows_finds_no_difference() -> None:
    assert mcnemar(*correctness_pairs(0, 0))["p_value"] == 1.0
