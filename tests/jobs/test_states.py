from __future__ import annotations

import itertools

import pytest

from shared.jobs.states import ALLOWED_TRANSITIONS, TERMINAL, JobStatus, can_transition


def test_happy_path_is_allowed() -> None:
    path = ["queued", "validating", "training", "evaluating", "exporting", "publishing", "succeeded"]
    for current, target in itertools.pairwise(path):
        assert can_transition(JobStatus(current), JobStatus(target))


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("queued", "training"),
        ("queued", "succeeded"),
        ("validating", "succeeded"),
        ("training", "validating"),
        ("succeeded", "failed"),
        ("cancelled", "queued"),
        ("failed", "training"),
        ("cancelling", "training"),
    ],
)
def test_illegal_transitions_are_refused(current: str, target: str) -> None:
    assert not can_transition(JobStatus(current), JobStatus(target))


def test_terminal_states_go_nowhere_and_every_live_state_can_fail_or_cancel() -> None:
    for status in JobStatus:
        if status in TERMINAL:
            assert ALLOWED_TRANSITIONS[status] == frozenset()
        elif status != JobStatus.CANCELLING:
            assert {JobStatus.FAILED, JobStatus.CANCELLING} <= ALLOWED_TRANSITIONS[status]
