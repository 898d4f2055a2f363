"""The report's pictures as PNG bytes, drawn with matplotlib's Agg canvas.

Figures are built from `matplotlib.figure.Figure` directly rather than pyplot, so drawing keeps no
global state and is safe in a long-lived worker process.
"""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

import numpy as np
from matplotlib.figure import Figure

# Above this many classes, cell annotations and tick labels become unreadable and are left out.
ANNOTATE_UP_TO_CLASSES = 20


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def confusion_matrix_png(confusion: dict[str, Any]) -> bytes:
    """Heatmap of the row-normalized confusion matrix (share of each true class), counts annotated."""
    labels = confusion["labels"]
    counts = np.array(confusion["counts"], dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    side = min(4 + 0.35 * len(labels), 16)
    figure = Figure(figsize=(side + 1.5, side))
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="share of true class")
    axes.set_xlabel("predicted label")
    axes.set_ylabel("true label")
    axes.set_title("Confusion matrix (row-normalized)")
    if len(labels) <= ANNOTATE_UP_TO_CLASSES:
        axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        axes.set_yticks(range(len(labels)), labels)
        for true_index, row in enumerate(counts):
            for predicted_index, count in enumerate(row):
                color = "white" if shares[true_index, predicted_index] > 0.5 else "black"
                axes.text(predicted_index, true_index, f"{int(count)}", ha="center", va="center", color=color)
    return _png(figure)


def reliability_diagram_png(calibration: dict[str, Any]) -> bytes:
    """Accuracy against mean confidence per bin, with the diagonal of perfect calibration."""
    bins = calibration["bins"]
    figure = Figure(figsize=(6, 6.5))
    curve_axes, count_axes = figure.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    centers = [(entry["lower"] + entry["upper"]) / 2 for entry in bins]
    width = bins[0]["upper"] - bins[0]["lower"]
    accuracies = [entry["accuracy"] if entry["accuracy"] is not None else 0.0 for entry in bins]
    curve_axes.bar(
        centers, accuracies, width=width * 0.9, color="#4c72b0", edgecolor="black", label="accuracy"
    )
    curve_axes.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    filled = [entry for entry in bins if entry["count"]]
    curve_axes.plot(
        [entry["mean_confidence"] for entry in filled],
        [entry["accuracy"] for entry in filled],
        marker="o",
        color="#dd8452",
        label="accuracy at mean confidence",
    )
    curve_axes.set_ylim(0, 1)
    curve_axes.set_ylabel("accuracy")
    ece = calibration["ece"]
    curve_axes.set_title(f"Reliability diagram (ECE {ece:.3f})" if ece is not None else "Reliability diagram")
    curve_axes.legend(loc="upper left")
    count_axes.bar(centers, [entry["count"] for entry in bins], width=width * 0.9, color="#8c8c8c")
    count_axes.set_xlabel("confidence")
    count_axes.set_ylabel("rows")
    count_axes.set_xlim(0, 1)
    return _png(figure)


def per_class_f1_png(per_class: list[dict[str, Any]]) -> bytes:
    """Horizontal bars of F1 per class with support, worst class at the top."""
    shown = sorted(
        (entry for entry in per_class if entry["support"] or entry["predicted"]), key=lambda e: e["f1"]
    )
    figure = Figure(figsize=(7, max(2.5, 0.28 * len(shown) + 1)))
    axes = figure.add_subplot()
    positions = np.arange(len(shown))
    axes.barh(positions, [entry["f1"] for entry in shown], color="#55a868")
    axes.set_yticks(positions, [f"{entry['label']} (n={entry['support']})" for entry in shown], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel("F1")
    axes.set_title("F1 per class")
    return _png(figure)


def training_curves_png(metric_points: list[dict[str, Any]]) -> bytes:
    """One panel per metric name (loss, eval metrics), value against training step."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for point in metric_points:
        series[str(point["name"])].append((float(point["step"]), float(point["value"])))
    names = sorted(series)
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    figure = Figure(figsize=(4.5 * columns, 3.2 * rows))
    for index, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, index + 1)
        steps, values = zip(*sorted(series[name]), strict=True)
        axes.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3)
        axes.set_title(name)
        axes.set_xlabel("step")
        axes.grid(alpha=0.3)
    figure.tight_layout()
    return _png(figure)
