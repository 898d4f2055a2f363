"""Search mode: Optuna's TPE sampler, driven ask/tell style from the variants the study holds.

No Optuna storage is kept: each time a trial is wanted, an in-memory Optuna study is rebuilt from
the variants so far (finished ones with their metric, failed ones as failures, running ones as
running, which the constant-liar sampler keeps away from), and one trial is asked of it. The
sampler's seed moves on with the number of trials, so a rebuilt sampler does not repeat the draw
of the one before it, and the same study seed gives the same sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial

from shared.studies.spec import CategoricalParameter, FloatParameter, SearchVariants

TrialOutcome = Literal["complete", "failed", "running"]

_STATES = {"complete": TrialState.COMPLETE, "failed": TrialState.FAIL, "running": TrialState.RUNNING}


@dataclass(frozen=True)
class TrialRecord:
    """A search variant as Optuna sees it: its parameters (dotted paths) and how it ended."""

    params: dict[str, Any]
    outcome: TrialOutcome
    value: float | None = None


def distributions(search: SearchVariants) -> dict[str, BaseDistribution]:
    result: dict[str, BaseDistribution] = {}
    for path, parameter in search.space.items():
        if isinstance(parameter, FloatParameter):
            result[path] = FloatDistribution(parameter.low, parameter.high, log=parameter.log)
        elif isinstance(parameter, CategoricalParameter):
            result[path] = CategoricalDistribution(parameter.choices)
        else:
            result[path] = IntDistribution(
                parameter.low, parameter.high, log=parameter.log, step=parameter.step
            )
    return result


def next_trial_params(search: SearchVariants, direction: str, history: list[TrialRecord]) -> dict[str, Any]:
    """The parameters of the next trial, given every trial asked before it (in order)."""
    space = distributions(search)
    sampler = optuna.samplers.TPESampler(
        seed=search.seed + len(history),
        constant_liar=True,
        # Small budgets are the rule here: let TPE take over after a third of them instead of 10.
        n_startup_trials=max(2, search.trials // 3),
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize" if direction == "maximize" else "minimize", sampler=sampler
    )
    for record in history:
        study.add_trial(
            create_trial(
                params=record.params,
                distributions=space,
                state=_STATES[record.outcome],
                value=record.value if record.outcome == "complete" else None,
            )
        )
    return dict(study.ask(space).params)
