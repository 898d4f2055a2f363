"""Search mode: Optuna TPE asked one trial at a time from the recorded history."""

from __future__ import annotations

from shared.studies.search import TrialRecord, next_trial_params
from shared.studies.spec import SearchVariants

SPACE = {
    "mode": "search",
    "space": {
        "hyperparameters.learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
        "hyperparameters.epochs": {"type": "int", "low": 1, "high": 3},
        "method": {"type": "categorical", "choices": ["full", "lora"]},
    },
    "trials": 6,
    "seed": 0,
}


def run_search(seed: int, score) -> list[dict]:  # type: ignore[no-untyped-def]
    search = SearchVariants.model_validate({**SPACE, "seed": seed})
    history: list[TrialRecord] = []
    for _ in range(search.trials):
        params = next_trial_params(search, "maximize", history)
        history.append(TrialRecord(params=params, outcome="complete", value=score(params)))
    return [record.params for record in history]


def score(params: dict) -> float:
    return params["hyperparameters.epochs"] / 3 - abs(params["hyperparameters.learning_rate"] - 3e-4) * 100


def test_same_seed_same_trials_other_seed_other_trials() -> None:
    first, again, other = run_search(0, score), run_search(0, score), run_search(1, score)
    assert first == again
    assert first != other


def test_trials_stay_in_the_space_and_do_not_repeat() -> None:
    trials = run_search(0, score)
    for params in trials:
        assert 1e-5 <= params["hyperparameters.learning_rate"] <= 1e-3
        assert params["hyperparameters.epochs"] in (1, 2, 3)
        assert params["method"] in ("full", "lora")
    rates = [params["hyperparameters.learning_rate"] for params in trials]
    assert len(set(rates)) == len(rates)


def test_running_and_failed_trials_are_accepted_as_history() -> None:
    search = SearchVariants.model_validate(SPACE)
    first = next_trial_params(search, "maximize", [])
    history = [
        TrialRecord(params=first, outcome="running"),
        TrialRecord(
            params=next_trial_params(search, "maximize", [TrialRecord(first, "running")]), outcome="failed"
        ),
    ]
    third = next_trial_params(search, "minimize", history)
    assert third != first and set(third) == set(SPACE["space"])
