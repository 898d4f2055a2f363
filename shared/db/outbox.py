"""Side effects that must wait for a commit: registered during a transaction, run after it.

A service that changes rows and wants something to happen because of it (send the next stage to
the queue, tell a study, delete an object, load a model on Triton, deliver a webhook) adds an effect to the session's
outbox instead of doing it on the spot. Whoever commits the session runs the effects, once the
commit went through; a rollback drops them. So a worker never gets a task for a row it cannot see
yet, and a refused request deletes nothing.

The effects are plain data; what each one does is up to the `EffectRunner` the session factory was
given (`shared.effects`), which holds the Celery app, the object store and the Triton client.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

_OUTBOX_KEY = "temper_outbox"
_RUNNER_KEY = "temper_effect_runner"
_COMMITTED_KEY = "temper_committed_effects"


@dataclass(frozen=True)
class EnqueueStage:
    """Send the task of `stage` for the job to its queue (its team, and the request that submitted
    it when the sender's log context lacks it, go along for the task's logs)."""

    job_id: uuid.UUID
    stage: str
    team_id: uuid.UUID | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class AdvanceStudy:
    """Let the study submit its next variants or close (one of its jobs finished)."""

    study_id: uuid.UUID


@dataclass(frozen=True)
class DeleteObject:
    """Remove an object from the object store (its row is gone)."""

    key: str


@dataclass(frozen=True)
class LoadModelVersion:
    """Load (pin) a published version on Triton: it became the production version."""

    repository_name: str
    version: int
    formats: tuple[str, ...]


@dataclass(frozen=True)
class RevokeTask:
    """Stop a Celery task on whatever worker runs it (a cancel the worker never answered)."""

    task_id: str
    terminate: bool = True


@dataclass(frozen=True)
class DeliverWebhook:
    """Send one webhook delivery attempt (its row is pending), after `countdown` seconds."""

    delivery_id: uuid.UUID
    countdown: float | None = None


@dataclass(frozen=True)
class DispatchJobs:
    """Run a dispatch pass (`shared.jobs.dispatch`): a job was queued, a slot freed, a quota moved.

    `wait`: whoever committed waits for the pass before answering, so that its caller's next read
    sees the admission (a submit, a quota change). False where the pass may admit many jobs and the
    answer must not wait for them (resuming a paused queue)."""

    wait: bool = True


Effect = (
    DispatchJobs | EnqueueStage | AdvanceStudy | DeleteObject | LoadModelVersion | RevokeTask | DeliverWebhook
)


class EffectRunner(Protocol):
    """Runs effects after a commit. It must not raise: a failure is logged and counted, and the
    reconcilers (the reaper, Triton's reload) repair what an effect that failed left undone."""

    def run(self, effects: Sequence[Effect]) -> None: ...


@dataclass
class Outbox:
    effects: list[Effect] = field(default_factory=list)

    def add(self, effect: Effect) -> None:
        if effect not in self.effects:
            self.effects.append(effect)

    def drain(self) -> list[Effect]:
        effects, self.effects = self.effects, []
        return effects

    def clear(self) -> None:
        self.effects = []


def outbox(session: Session) -> Outbox:
    """The outbox of `session`'s current transaction."""
    box = session.info.get(_OUTBOX_KEY)
    if box is None:
        box = session.info[_OUTBOX_KEY] = Outbox()
    return box


def install_outbox(factory: sessionmaker[Session], runner: EffectRunner | None) -> sessionmaker[Session]:
    """Make every session of `factory` run its outbox after each commit and drop it on rollback.

    Without a runner (a script, a test of a service on its own) a commit with pending effects is a
    bug: nothing would ever send them, so the commit is refused instead of losing them.
    """
    factory.kw.setdefault("info", {})[_RUNNER_KEY] = runner

    @sa.event.listens_for(factory, "before_commit")
    def _refuse_effects_without_runner(session: Session) -> None:
        pending = outbox(session).effects
        if pending and session.info.get(_RUNNER_KEY) is None:
            raise RuntimeError(
                f"a commit would leave {len(pending)} effect(s) and no runner to run them: {pending}"
            )

    @sa.event.listens_for(factory, "after_commit")
    def _hold_until_released(session: Session) -> None:
        # The connection is still checked out here. An effect may open a session of its own (a
        # dispatch pass does), and one that waited for a second connection while holding the first
        # could exhaust the pool under load: the effects run once the transaction has ended.
        session.info[_COMMITTED_KEY] = outbox(session).drain()

    @sa.event.listens_for(factory, "after_transaction_end")
    def _run_after_commit(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is not None:
            return  # a savepoint or a subtransaction; the outer commit decides
        effects = session.info.pop(_COMMITTED_KEY, None)
        effect_runner: EffectRunner | None = session.info.get(_RUNNER_KEY)
        if effects and effect_runner is not None:
            effect_runner.run(effects)

    @sa.event.listens_for(factory, "after_rollback")
    def _drop_on_rollback(session: Session) -> None:
        outbox(session).clear()

    return factory
