"""The evaluation report as one self-contained HTML file, pictures embedded as base64 PNG.

Every piece of text that came from data (row texts, label names, baseline names) goes through
`html.escape`: a test row may hold anything, including markup. The named module is
`html_report` rather than `html` so it cannot be mistaken for the standard library's module.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from shared.pipeline.evaluate.charts import (
    confusion_matrix_png,
    per_class_f1_png,
    reliability_diagram_png,
    training_curves_png,
)
from shared.pipeline.evaluate.gate import GateResult

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; vertical-align: top; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; max-width: 520px; overflow-wrap: anywhere; }
.passed { color: #1a7f37; font-weight: bold; } .failed { color: #cf222e; font-weight: bold; }
.note { color: #666; font-size: 0.85rem; } img { max-width: 100%; border: 1px solid #eee; margin: 0.5rem 0; }
"""

# Marks the page once every picture has decoded, so a browser check (and a human) can tell that the
# embedded PNGs are intact.
_IMAGE_CHECK = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var decoded = images.filter(function (image) { return image.complete && image.naturalWidth > 0; });
  document.body.setAttribute("data-images", decoded.length + "/" + images.length);
});
"""


def render_html_report(
    report: dict[str, Any],
    *,
    title: str = "Evaluation report",
    gate_result: GateResult | None = None,
    comparison: dict[str, Any] | None = None,
    robustness: dict[str, Any] | None = None,
    metric_points: list[dict[str, Any]] | None = None,
) -> tuple[str, dict[str, bytes]]:
    """Return the HTML page and its pictures by file name (the same PNGs the page embeds)."""
    pictures = {
        "confusion_matrix.png": confusion_matrix_png(report["confusion_matrix"]),
        "reliability_diagram.png": reliability_diagram_png(report["calibration"]),
        "per_class_f1.png": per_class_f1_png(report["per_class"]),
    }
    if metric_points:
        pictures["training_curves.png"] = training_curves_png(metric_points)
    sections = [
        f"<h1>{escape_text(title)}</h1>",
        _summary(report, gate_result, comparison),
        gate_section(gate_result),
        _metrics(report),
        _comparison(comparison),
        _per_class(report),
        picture_section("Confusion matrix", pictures["confusion_matrix.png"], "confusion matrix heatmap"),
        _calibration(report, pictures["reliability_diagram.png"]),
        picture_section("F1 per class", pictures["per_class_f1.png"], "F1 per class"),
        picture_section("Training curves", pictures.get("training_curves.png"), "training curves"),
        _mistakes(report),
        _slices(report),
        _robustness(robustness),
    ]
    return html_page(title, sections), pictures


def html_page(title: str, sections: list[str]) -> str:
    """The page around `sections` (already-escaped HTML; empty ones are left out)."""
    body = "\n".join(section for section in sections if section)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape_text(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n"
        f"<script>{_IMAGE_CHECK}</script>\n</body>\n</html>\n"
    )


def escape_text(value: Any) -> str:
    return html.escape(str(value), quote=True)


def format_number(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def html_table(headers: list[str], rows: list[list[str]], text_columns: frozenset[int] = frozenset()) -> str:
    """A table of already-escaped cells; `text_columns` are left-aligned."""

    def cell(tag: str, index: int, content: str) -> str:
        css = ' class="text"' if index in text_columns else ""
        return f"<{tag}{css}>{content}</{tag}>"

    head = "".join(cell("th", index, escape_text(header)) for index, header in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(cell("td", i, content) for i, content in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary(
    report: dict[str, Any], gate_result: GateResult | None, comparison: dict[str, Any] | None
) -> str:
    metrics = report["metrics"]
    parts = [
        f"{report['rows']} test rows, {len(report['labels'])} labels",
        f"accuracy {format_number(metrics['accuracy'])}",
        f"macro F1 {format_number(metrics['f1_macro'])}",
    ]
    if comparison is not None:
        delta = comparison["metrics"]["f1_macro"]["delta"]
        parts.append(f"macro F1 vs {escape_text(comparison['baseline'])}: {delta:+.4f}")
    if gate_result is not None:
        verdict = "passed" if gate_result.passed else "failed"
        parts.append(f'gate <span class="{verdict}">{verdict}</span>')
    return "<h2>Summary</h2><p>" + " · ".join(parts) + "</p>"


def gate_section(gate_result: GateResult | None) -> str:
    if gate_result is None:
        return ""
    verdict = "passed" if gate_result.passed else "failed"
    items = "".join(f"<li>{escape_text(reason)}</li>" for reason in gate_result.reasons)
    return f'<h2>Promotion gate</h2><p class="{verdict}">Gate {verdict}</p><ul>{items}</ul>'


def _metrics(report: dict[str, Any]) -> str:
    metrics = report["metrics"]
    rows = [[escape_text(name), format_number(value)] for name, value in metrics.items()]
    confidence = report["confidence"]
    confidence_rows = [
        ["mean confidence", format_number(confidence["mean"])],
        ["mean confidence when correct", format_number(confidence["mean_correct"])],
        ["mean confidence when wrong", format_number(confidence["mean_wrong"])],
        [f"share below {confidence['threshold']}", format_number(confidence["share_below_threshold"])],
    ]
    notes = "".join(f'<p class="note">{escape_text(note)}</p>' for note in report["notes"])
    return (
        "<h2>Metrics</h2>"
        + html_table(["metric", "value"], rows, frozenset({0}))
        + "<h3>Confidence</h3>"
        + html_table(["statistic", "value"], confidence_rows, frozenset({0}))
        + notes
    )


def _comparison(comparison: dict[str, Any] | None) -> str:
    if comparison is None:
        return ""
    rows = []
    for name, figures in comparison["metrics"].items():
        interval = figures["delta_interval"]
        interval_text = f"[{interval['low']:+.4f}, {interval['high']:+.4f}]" if interval else "n/a"
        delta = figures["delta"]
        rows.append(
            [
                escape_text(name),
                format_number(figures["candidate"]),
                format_number(figures["baseline"]),
                f"{delta:+.4f}" if delta is not None else "n/a",
                interval_text,
            ]
        )
    test = comparison["mcnemar"]
    bootstrap = comparison["bootstrap"]
    return (
        f"<h2>Baseline comparison: {escape_text(comparison['baseline'])}</h2>"
        + html_table(
            ["metric", "candidate", "baseline", "delta", f"{bootstrap['confidence']:.0%} CI of delta"],
            rows,
            frozenset({0}),
        )
        + f"<p>McNemar ({escape_text(test['method'])}): only candidate right {test['only_candidate_correct']}, "
        f"only baseline right {test['only_baseline_correct']}, p = {test['p_value']:.4g}.</p>"
        + f'<p class="note">Paired bootstrap, {bootstrap["resamples"]} resamples, seed {bootstrap["seed"]}; '
        f"predictions agree on {format_number(comparison['prediction_agreement'])} of rows.</p>"
    )


def _per_class(report: dict[str, Any]) -> str:
    rows = [
        [
            escape_text(entry["label"]),
            format_number(entry["precision"]),
            format_number(entry["recall"]),
            format_number(entry["f1"]),
            str(entry["support"]),
            str(entry["predicted"]),
        ]
        for entry in report["per_class"]
    ]
    return "<h2>Per class</h2>" + html_table(
        ["label", "precision", "recall", "F1", "support", "predicted"], rows, frozenset({0})
    )


def picture_section(heading: str, png: bytes | None, alt: str) -> str:
    if png is None:
        return ""
    encoded = base64.b64encode(png).decode("ascii")
    return (
        f'<h2>{escape_text(heading)}</h2><img alt="{escape_text(alt)}" src="data:image/png;base64,{encoded}">'
    )


def _calibration(report: dict[str, Any], png: bytes) -> str:
    calibration = report["calibration"]
    ranking = report["ranking"]
    ranking_text = (
        f"ROC-AUC {format_number(ranking['roc_auc'])}, PR-AUC (average precision) {format_number(ranking['pr_auc'])}"
        + (f" ({escape_text(ranking['note'])})" if ranking["note"] else "")
        + (f", positive label {escape_text(ranking['positive_label'])}" if ranking["positive_label"] else "")
    )
    return (
        picture_section("Calibration", png, "reliability diagram")
        + f"<p>ECE {format_number(calibration['ece'])} over {calibration['n_bins']} equal-width bins. {ranking_text}.</p>"
    )


def _mistakes(report: dict[str, Any]) -> str:
    if not report["mistakes"]:
        return "<h2>Most confident mistakes</h2><p>No mistakes.</p>"
    rows = [
        [
            escape_text(entry["row_id"]),
            escape_text(entry["text"]),
            escape_text(entry["true_label"]),
            escape_text(entry["predicted_label"]),
            format_number(entry["confidence"]),
            format_number(entry["top2_gap"]),
        ]
        for entry in report["mistakes"]
    ]
    return "<h2>Most confident mistakes</h2>" + html_table(
        ["row", "text", "true", "predicted", "confidence", "top-2 gap"], rows, frozenset({1, 2, 3})
    )


def _slices(report: dict[str, Any]) -> str:
    rows = [
        [
            escape_text(entry["bucket"]),
            str(entry["rows"]),
            format_number(entry["accuracy"]),
            format_number(entry["f1_macro"]),
            format_number(entry["mean_confidence"]),
        ]
        for entry in report["slices"]
    ]
    return "<h2>By input length</h2>" + html_table(
        ["length", "rows", "accuracy", "macro F1", "mean confidence"], rows, frozenset({0})
    )


def _robustness(robustness: dict[str, Any] | None) -> str:
    if robustness is None:
        return ""
    rows = [
        [
            escape_text(entry["perturbation"]),
            format_number(entry["accuracy"]),
            f"{entry['accuracy_delta']:+.4f}",
            format_number(entry["f1_macro"]),
            f"{entry['f1_macro_delta']:+.4f}",
            format_number(entry["flipped_share"]),
        ]
        for entry in robustness["perturbations"]
    ]
    clean = robustness["clean"]
    return (
        "<h2>Robustness</h2>"
        + f"<p>Clean rows: accuracy {format_number(clean['accuracy'])}, macro F1 {format_number(clean['f1_macro'])}; "
        f"perturbations seeded with {robustness['seed']}.</p>"
        + html_table(
            ["perturbation", "accuracy", "Δ accuracy", "macro F1", "Δ macro F1", "predictions flipped"],
            rows,
            frozenset({0}),
        )
    )
