"""The evaluate step of the pipeline: reports, baseline comparison, promotion gate, HTML report.

`evaluate_classifier` is the entry point for classifiers; `generation.generation_report` for
causal language models.
"""

from shared.pipeline.evaluate.classifier_evaluation import (
    EvaluationOptions,
    EvaluationResult,
    evaluate_classifier,
)
from shared.pipeline.evaluate.gate import GateResult, GateSpec, evaluate_gate

__all__ = [
    "EvaluationOptions",
    "EvaluationResult",
    "GateResult",
    "GateSpec",
    "evaluate_classifier",
    "evaluate_gate",
]
