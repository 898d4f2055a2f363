"""Which code runs a stage: chosen per job by its task family, behind one stage body per stage."""

from __future__ import annotations

import importlib
from typing import cast

from shared.jobs.run import JobRun
from shared.jobs.stages.runner import StageBody, StageOutcome

# "module:function" of each stage body, by task family. Imported on first use: a classification
# worker never loads the SFT stack, and the other way round.
_BODIES: dict[str, dict[str, str]] = {
    "text-classification": {
        stage: f"shared.jobs.stages.{stage}:run_{stage}"
        for stage in ("validate", "train", "evaluate", "export", "publish")
    },
    "causal-lm": {
        stage: f"shared.jobs.stages.causal_lm.{stage}:run_{stage}"
        for stage in ("validate", "train", "evaluate", "export", "publish")
    },
}


def stage_body(stage: str) -> StageBody:
    """The body of `stage` for whatever task family the job it runs for belongs to."""

    def body(run: JobRun) -> StageOutcome:
        module_name, function_name = _BODIES[run.spec.task][stage].split(":")
        function = getattr(importlib.import_module(module_name), function_name)
        return cast(StageBody, function)(run)

    return body
