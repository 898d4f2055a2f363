"""The HTML report opens in a real browser (headless Chromium), shows its pictures, and escapes text."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from shared.pipeline.evaluate import EvaluationOptions, evaluate_classifier
from shared.pipeline.evaluate.classification import classification_report
from shared.pipeline.evaluate.html_report import render_html_report

CHROMIUM = Path("/usr/bin/chromium")
# Kept for a human to look at after a run (the test report links it).
SCREENSHOT_COPY = Path("/tmp/temper_report_screenshot.png")


def chromium(arguments: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to check the HTML report"
        )
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        # Sends the page's console messages (uncaught errors included) to stderr as ":CONSOLE" lines.
        "--enable-logging=stderr",
        f"--user-data-dir={profile}",
        *arguments,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def report_page(trained_sms_classifier: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = trained_sms_classifier
    result = evaluate_classifier(
        case["model_dir"],
        case["test_rows"],
        [row["label"] for row in case["train_rows"]],
        gate={"metric": "f1_macro", "min": 0.85, "better_than_baseline": True},
        metric_points=case["metric_points"],
        options=EvaluationOptions(positive_label="spam", bootstrap_resamples=300),
        title="sms-spam tiny-bert v2",
    )
    page = tmp_path_factory.mktemp("html") / "report.html"
    page.write_text(result.html, encoding="utf-8")
    return page


def test_report_opens_in_chromium_and_every_picture_decodes(report_page: Path, tmp_path: Path) -> None:
    completed = chromium(
        ["--virtual-time-budget=10000", "--dump-dom", report_page.as_uri()], tmp_path / "profile"
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    marker = re.search(r'<body data-images="(\d+)/(\d+)"', completed.stdout)
    assert marker, "the page's load handler did not run"
    decoded, total = map(int, marker.groups())
    assert total == 4
    assert decoded == total, f"only {decoded} of {total} pictures decoded"
    assert console_messages(completed) == []


def console_messages(completed: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in completed.stderr.splitlines() if ":CONSOLE" in line]


def test_console_check_sees_a_script_error(tmp_path: Path) -> None:
    """The console check above would catch a broken page script."""
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>notDefined();</script></body></html>", encoding="utf-8")
    completed = chromium(["--virtual-time-budget=3000", "--dump-dom", broken.as_uri()], tmp_path / "profile")
    assert any("Uncaught ReferenceError" in line for line in console_messages(completed))


def test_report_screenshot_is_not_blank(report_page: Path, tmp_path: Path) -> None:
    screenshot = tmp_path / "report.png"
    completed = chromium(
        [f"--screenshot={screenshot}", "--window-size=1280,2400", report_page.as_uri()], tmp_path / "profile"
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    pixels = imread(screenshot)
    assert pixels.shape[:2] == (2400, 1280)
    grey = pixels[..., :3].mean(axis=2)
    # A rendered report has text and a coloured heatmap on white: many dark pixels and many shades.
    assert (grey < 0.5).mean() > 0.01
    assert len(np.unique(np.round(grey, 2))) > 20
    shutil.copyfile(screenshot, SCREENSHOT_COPY)


def test_row_text_is_escaped_not_rendered() -> None:
    hostile = '<img src=x onerror="alert(1)"><script>alert(2)</script> WIN a prize & call'
    report = classification_report(
        ["ham", "ham"], np.array([[0.05, 0.95], [0.9, 0.1]]), ["ham", "spam"], [hostile, "see you at 5"]
    )
    page, _ = render_html_report(report)
    assert hostile not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt; WIN a prize &amp; call" in page
    assert page.count("<script>") == 1, "only the report's own image check script"
