"""The evaluation report of a causal-LM job as one self-contained HTML page.

The headline is the comparison with the baseline (perplexity on every row, overlap metrics on the
generated sample) with bootstrap intervals; below it, side-by-side samples: the prompt, the
reference answer, the baseline's answer and the fine-tuned model's, which is what a reader checks
first. Every text from the data is escaped.
"""

from __future__ import annotations

from typing import Any

from shared.pipeline.evaluate.charts import training_curves_png
from shared.pipeline.evaluate.gate import GateResult
from shared.pipeline.evaluate.html_report import (
    escape_text,
    format_number,
    gate_section,
    html_page,
    html_table,
    picture_section,
)


def render_generation_report(
    report: dict[str, Any],
    *,
    title: str,
    gate_result: GateResult | None,
    metric_points: list[dict[str, Any]] | None = None,
) -> str:
    curves = training_curves_png(metric_points) if metric_points else None
    sections = [
        f"<h1>{escape_text(title)}</h1>",
        _summary(report, gate_result),
        gate_section(gate_result),
        _comparison(report["baseline_comparison"]),
        _samples(report["samples"], report["baseline_comparison"]["baseline"]),
        picture_section("Training curves", curves, "training curves"),
        "<h2>Notes</h2><ul>" + "".join(f"<li>{escape_text(note)}</li>" for note in report["notes"]) + "</ul>",
    ]
    return html_page(title, sections)


def _summary(report: dict[str, Any], gate_result: GateResult | None) -> str:
    comparison = report["baseline_comparison"]
    perplexity = comparison["metrics"]["perplexity"]
    parts = [
        f"{report['rows']} rows ({report['answer_tokens']} answer tokens), {report['generated_rows']} generated",
        f"perplexity {format_number(perplexity['candidate'], 3)} vs {escape_text(comparison['baseline'])} "
        f"{format_number(perplexity['baseline'], 3)}",
        f"ROUGE-L {format_number(report['metrics']['rougeL'])}",
    ]
    if gate_result is not None:
        verdict = "passed" if gate_result.passed else "failed"
        parts.append(f'gate <span class="{verdict}">{verdict}</span>')
    return "<h2>Summary</h2><p>" + " · ".join(parts) + "</p>"


def _comparison(comparison: dict[str, Any]) -> str:
    rows = []
    for name, figures in comparison["metrics"].items():
        interval = figures["delta_interval"]
        rows.append(
            [
                escape_text(name) + ("" if figures["higher_is_better"] else " (lower is better)"),
                format_number(figures["candidate"]),
                format_number(figures["baseline"]),
                f"{figures['delta']:+.4f}",
                f"[{interval['low']:+.4f}, {interval['high']:+.4f}]",
            ]
        )
    test = comparison["significance"]
    bootstrap = comparison["bootstrap"]
    return (
        f"<h2>Against the baseline: {escape_text(comparison['baseline'])}</h2>"
        + html_table(
            ["metric", "fine-tuned", "baseline", "delta", f"{bootstrap['confidence']:.0%} CI of delta"],
            rows,
            frozenset({0}),
        )
        + f"<p>{escape_text(test['method'])}: p = {test['p_value']:.4g} over {test['rows']} rows.</p>"
        + f'<p class="note">Paired bootstrap, {bootstrap["resamples"]} resamples, seed {bootstrap["seed"]}.</p>'
    )


def _samples(samples: list[dict[str, Any]], baseline_name: str) -> str:
    if not samples:
        return ""
    rows = [
        [
            "<br>".join(
                f"<b>{escape_text(message['role'])}</b>: {escape_text(message['content'])}"
                for message in sample["prompt"]
            ),
            escape_text(sample["reference"]),
            escape_text(sample["baseline_generated"]),
            escape_text(sample["generated"]),
        ]
        for sample in samples
    ]
    return "<h2>Samples</h2>" + html_table(
        ["prompt", "reference", f"baseline ({baseline_name})", "fine-tuned"], rows, frozenset({0, 1, 2, 3})
    )
