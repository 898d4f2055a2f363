"""The evaluate step of the pipeline: reports, baseline comparison, promotion gate, HTML report.

`evaluate_classifier` is the entry point for classifiers; `generation.generation_report` for
causal language models. Names load on first use: the job spec needs only the gate, and the API
process should not pay for torch and transformers to validate a spec.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EvaluationOptions": "classifier_evaluation",
    "EvaluationResult": "classifier_evaluation",
    "evaluate_classifier": "classifier_evaluation",
    "GateResult": "gate",
    "GateSpec": "gate",
    "evaluate_gate": "gate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
