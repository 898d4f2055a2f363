"""Distillation over REST with a real worker: a teacher job, then a smaller student that learns from
it; the student's report compares it with its teacher on quality and on serving latency."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import Settings
from tests.support.stack import running_stack
from tests.support.tickets import WORDS, tickets_spec, upload_tickets
from tests.support.tiny_models import build_tiny_bert


@pytest.fixture(scope="module")
def student_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A narrower, shallower encoder than the teacher's base (tests/conftest.py's tiny_base_model)."""
    vocabulary = [" ".join(words) for words in WORDS.values()] + ["my issue number about the"]
    return build_tiny_bert(tmp_path_factory.mktemp("student"), vocabulary, hidden_size=16, num_layers=1)


def test_a_student_learns_from_a_finished_job_and_is_compared_with_it(
    embedded_settings: Settings, tiny_base_model: Path, student_base: Path, tmp_path: Path
) -> None:
    with running_stack(embedded_settings) as stack:
        stack.register_base_model("tiny-bert", f"local:{tiny_base_model}")
        stack.register_base_model("tiny-student", f"local:{student_base}")
        _, key = stack.new_team()
        headers = stack.headers(key)
        train_id, test_id = upload_tickets(stack, key, tmp_path)

        teacher_spec = tickets_spec(train_id, test_id, epochs=3, export={"tensorrt": False})
        teacher = stack.client.post("/v1/jobs", json=teacher_spec, headers=headers).json()
        running_teacher = {**tickets_spec(train_id, test_id), "method": "distill"}
        running_teacher["distillation"] = {"teacher_job_id": teacher["id"]}
        early = stack.client.post(
            "/v1/jobs", json={**running_teacher, "base_model": "tiny-student"}, headers=headers
        )
        assert (
            early.status_code == 422
            and early.json()["error"]["details"]["field"] == "distillation.teacher_job_id"
        )
        teacher = stack.wait_for(key, teacher["id"], timeout_s=300)
        assert teacher["status"] == "succeeded", teacher

        student_spec = {
            **tickets_spec(train_id, test_id, epochs=4, export={"tensorrt": False}),
            "base_model": "tiny-student",
            "method": "distill",
            "distillation": {"teacher_job_id": teacher["id"], "temperature": 2.0, "alpha": 0.7},
        }
        submitted = stack.client.post("/v1/jobs", json=student_spec, headers=headers)
        assert submitted.status_code == 201, submitted.text
        assert submitted.json()["spec"]["evaluation"]["baseline"] == f"job:{teacher['id']}"
        student = stack.wait_for(key, submitted.json()["id"], timeout_s=300)
        assert student["status"] == "succeeded", student

        # Quality: the student's evaluation is against its teacher, on the same test rows.
        evaluation = student["result"]["evaluation"]
        assert evaluation["baseline"]["name"] == f"job {teacher['id']}"
        assert (
            evaluation["baseline"]["metrics"]["accuracy"]
            == teacher["result"]["evaluation"]["metrics"]["accuracy"]
        )
        assert "delta" in evaluation["deltas"]["accuracy"]
        # Serving: both served graphs timed in the student's export stage, on the same shape.
        comparison = student["result"]["export"]["distillation"]
        assert comparison["teacher_job_id"] == teacher["id"]
        assert (
            comparison["teacher_latency"]["sequence_length"]
            == comparison["student_latency"]["sequence_length"]
        )
        # Timings are reported, not asserted (bench/ measures speed); they must be real figures.
        assert comparison["teacher_latency"]["p50_ms"] > 0 and comparison["student_latency"]["p50_ms"] > 0
        assert comparison["speedup_p50"] == pytest.approx(
            comparison["teacher_latency"]["p50_ms"] / comparison["student_latency"]["p50_ms"], rel=1e-2
        )
        assert (
            student["result"]["train"]["trainable_parameters"]
            < teacher["result"]["train"]["trainable_parameters"]
        )
