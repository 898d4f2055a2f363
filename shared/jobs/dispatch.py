"""Admission of queued jobs: which job gets the next free worker slot, fairly across teams.

A submitted job is stored `queued` and waits here; nothing is sent to a worker until the
dispatcher admits it (stamps `admitted_at` and puts its validate task on the outbox). A job holds
its slot from admission until it ends, whatever stage it is in, so `slots` bounds how many jobs
run at once on the deployment's workers.

A pass admits while a slot is free, one job at a time, always to the team that runs the fewest
jobs, ties going to the team served least recently: two teams flooding the queue alternate, and a
third team's single job takes the very next free slot. A team at its quota is passed over and its
jobs wait with a reason: its concurrent-jobs limit, or the GPU-hours it spent in the quota period
(the hours its jobs held a slot). Passes run after every commit that can change the answer (a
submit, a job ending, a quota change; the `DispatchJobs` effect; an API process coalesces them in
`shared.jobs.dispatch_loop`) and on celery beat's tick, which also catches a quota period rolling
over. Passes are serialized by updating the one `dispatch_state` row first, so two processes never
hand out the same slot.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from shared.db.base import utcnow
from shared.db.models import DispatchState, Job, JobEvent, Team
from shared.db.outbox import DispatchJobs, EnqueueStage, outbox
from shared.db.session import session_scope
from shared.errors import NotFound
from shared.jobs.states import TERMINAL, JobStatus
from shared.observability import ADMISSION_WAIT
from shared.settings import Settings

# Statuses of a job that holds a slot once admitted (listed, not negated, so the index is used).
ACTIVE = [status for status in JobStatus if status not in TERMINAL]
_STATE_ID = 1


@dataclass(frozen=True)
class DispatchPolicy:
    """The deployment's side of admission: how many slots, and each team's default quotas."""

    slots: int
    max_concurrent_jobs: int
    gpu_hours_per_period: float | None
    period: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> DispatchPolicy:
        return cls(
            slots=settings.dispatch_slots,
            max_concurrent_jobs=settings.max_concurrent_jobs_per_team,
            gpu_hours_per_period=settings.gpu_hours_per_period,
            period=settings.quota_period,
        )


@dataclass(frozen=True)
class TeamUsage:
    """A team's quotas (its own or the defaults) against what it uses now."""

    team_id: uuid.UUID
    max_concurrent_jobs: int
    gpu_hours_per_period: float | None
    period: timedelta
    running: int
    waiting: int
    gpu_hours_used: float
    last_admitted_at: datetime | None
    oldest_waiting_at: datetime | None = None

    @property
    def blocked(self) -> tuple[str, str] | None:
        """Why the team may not start another job now (code, message), or None."""
        if self.running >= self.max_concurrent_jobs:
            return (
                "team_concurrency",
                f"the team runs {self.running} job(s) and its limit is {self.max_concurrent_jobs} at once",
            )
        if self.gpu_hours_per_period is not None and self.gpu_hours_used >= self.gpu_hours_per_period:
            days = self.period.total_seconds() / 86400
            return (
                "gpu_hours",
                f"the team used {self.gpu_hours_used:.2f} of its {self.gpu_hours_per_period:g} GPU-hours "
                f"in the last {days:g} day(s); its jobs wait until usage falls under the quota",
            )
        return None


@dataclass(frozen=True)
class QueuePosition:
    """Where a queued job stands: 1 = the next to start; `reason` says why it has not started yet."""

    position: int
    waiting: int
    reason: str
    message: str


class Dispatcher:
    def __init__(self, session: Session, policy: DispatchPolicy) -> None:
        self.session = session
        self.policy = policy

    # Admission -------------------------------------------------------------------------------------

    def run_pass(self, now: datetime | None = None, limit: int | None = None) -> list[uuid.UUID]:
        """Admit queued jobs while slots are free, at most `limit` of them; returns the admitted
        job ids (their validate tasks are sent after the commit)."""
        now = now or utcnow()
        # Most passes find nothing to do (a paused queue, every slot busy): they answer from a plain
        # read and write nothing, so that submits under load do not queue behind the lock.
        if not self._may_admit():
            return []
        state = self._lock_state(now)
        if state.paused:
            return []
        free = self.policy.slots - self._running_total()
        if free <= 0:
            return []
        usage = {team.team_id: team for team in self.usage(self._waiting_teams(), now)}
        next_jobs: dict[uuid.UUID, list[Job]] = {}  # each team's oldest waiting jobs, read and locked
        admitted: list[uuid.UUID] = []
        if limit is not None:
            free = min(free, limit)
        while free > 0:
            eligible = [team for team in usage.values() if team.waiting > 0 and team.blocked is None]
            if not eligible:
                break
            team = min(eligible, key=_turn_order)
            if not next_jobs.get(team.team_id):
                # As many as the team could start in this pass, in one read rather than one each.
                room = max(1, min(free, team.waiting, team.max_concurrent_jobs - team.running))
                next_jobs[team.team_id] = self._oldest_waiting(team.team_id, room)
            if not next_jobs[team.team_id]:  # cancelled since the counts were taken
                usage[team.team_id] = replace(team, waiting=0)
                continue
            job = next_jobs[team.team_id].pop(0)
            # Each admission of a pass gets its own instant, so turns stay ordered within it.
            stamp = now + timedelta(microseconds=len(admitted))
            self._admit(job, team, stamp)
            admitted.append(job.id)
            usage[team.team_id] = replace(
                team, running=team.running + 1, waiting=team.waiting - 1, last_admitted_at=stamp
            )
            free -= 1
        return admitted

    def _admit(self, job: Job, team: TeamUsage, now: datetime) -> None:
        job.admitted_at = now
        team_row = self.session.get(Team, job.team_id)
        assert team_row is not None
        team_row.last_admitted_at = now
        waited = (now - job.created_at).total_seconds()
        self.session.add(
            JobEvent(
                job_id=job.id,
                type="admitted",
                message=(
                    f"admitted after {waited:.1f} s in the queue; the team now runs "
                    f"{team.running + 1} of {team.max_concurrent_jobs} job(s)"
                ),
                data={"admitted": True, "waited_s": round(waited, 3)},
            )
        )
        outbox(self.session).add(
            EnqueueStage(job.id, "validate", team_id=job.team_id, request_id=job.request_id)
        )
        ADMISSION_WAIT.labels(stage="validate").observe(max(0.0, waited))

    # Reads -----------------------------------------------------------------------------------------

    def usage(self, team_ids: Iterable[uuid.UUID], now: datetime | None = None) -> list[TeamUsage]:
        """Quotas and usage of each team in `team_ids`."""
        now = now or utcnow()
        ids = list(team_ids)
        if not ids:
            return []
        teams = {team.id: team for team in self.session.scalars(sa.select(Team).where(Team.id.in_(ids)))}
        running_since: dict[uuid.UUID, list[datetime]] = {team_id: [] for team_id in ids}
        for team_id, admitted_at in self.session.execute(
            sa.select(Job.team_id, Job.admitted_at).where(
                Job.team_id.in_(ids), Job.status.in_(ACTIVE), Job.admitted_at.is_not(None)
            )
        ):
            if admitted_at is not None:
                running_since[team_id].append(admitted_at)
        waiting = {
            team_id: (count, oldest)
            for team_id, count, oldest in self.session.execute(
                sa.select(Job.team_id, sa.func.count(), sa.func.min(Job.created_at))
                .where(Job.team_id.in_(ids), *_waiting_clauses())
                .group_by(Job.team_id)
            )
        }
        since = now - self.policy.period
        finished_seconds = dict(
            self.session.execute(
                sa.select(Job.team_id, sa.func.coalesce(sa.func.sum(Job.worker_seconds), 0.0))
                .where(Job.team_id.in_(ids), Job.finished_at >= since, Job.worker_seconds.is_not(None))
                .group_by(Job.team_id)
            ).all()
        )
        result = []
        for team_id in ids:
            team = teams.get(team_id)
            if team is None:
                continue
            running_seconds = sum(
                max(0.0, (now - started).total_seconds()) for started in running_since[team_id]
            )
            result.append(
                TeamUsage(
                    team_id=team_id,
                    max_concurrent_jobs=team.max_concurrent_jobs or self.policy.max_concurrent_jobs,
                    gpu_hours_per_period=team.gpu_hours_per_period
                    if team.gpu_hours_per_period is not None
                    else self.policy.gpu_hours_per_period,
                    period=self.policy.period,
                    running=len(running_since[team_id]),
                    waiting=int(waiting.get(team_id, (0, None))[0]),
                    oldest_waiting_at=waiting.get(team_id, (0, None))[1],
                    gpu_hours_used=(float(finished_seconds.get(team_id) or 0.0) + running_seconds) / 3600,
                    last_admitted_at=team.last_admitted_at,
                )
            )
        return result

    def position(self, job: Job, now: datetime | None = None) -> QueuePosition | None:
        """Where a queued job stands and why it waits; None once it has a slot or has ended."""
        if JobStatus(job.status) != JobStatus.QUEUED:
            return None
        if job.admitted_at is not None:
            return QueuePosition(
                0, 0, "starting", "admitted; waiting for a worker to pick up its validate task"
            )
        now = now or utcnow()
        teams = self.usage(self._waiting_teams(), now)
        mine = next((team for team in teams if team.team_id == job.team_id), None)
        if mine is None:  # admitted (or cancelled) since the job was read
            return None
        ahead_in_team = (
            self.session.scalar(
                sa.select(sa.func.count()).where(
                    Job.team_id == job.team_id,
                    *_waiting_clauses(),
                    sa.or_(
                        Job.created_at < job.created_at,
                        sa.and_(Job.created_at == job.created_at, Job.id < job.id),
                    ),
                )
            )
            or 0
        )
        # Teams take turns: before this job's turn comes, each other team that may run gets as many
        # admissions as this team has jobs ahead, plus one if its turn comes first.
        position = ahead_in_team + 1
        for other in teams:
            if other.team_id == job.team_id or other.blocked is not None:
                continue
            turns = ahead_in_team + (1 if _turn_order(other) < _turn_order(mine) else 0)
            position += min(other.waiting, turns)
        waiting = sum(team.waiting for team in teams)
        reason, message = self._why_waiting(mine)
        return QueuePosition(position, waiting, reason, message)

    def _why_waiting(self, team: TeamUsage) -> tuple[str, str]:
        state = self.session.get(DispatchState, _STATE_ID)
        if state is not None and state.paused:
            return "paused", f"an admin paused job dispatch: {state.paused_reason or 'no reason given'}"
        if team.blocked is not None:
            return team.blocked
        running = self._running_total()
        if running >= self.policy.slots:
            return "no_free_worker", f"all {self.policy.slots} worker slot(s) are busy with running jobs"
        return "next_dispatch", "a slot is free; the job starts at the next dispatch pass"

    def state(self) -> DispatchState:
        existing = self.session.get(DispatchState, _STATE_ID)
        return existing if existing is not None else self._lock_state(utcnow())

    def set_paused(self, paused: bool, reason: str | None = None) -> DispatchState:
        state = self._lock_state(utcnow())
        state.paused = paused
        state.paused_reason = reason if paused else None
        if not paused:
            # Thousands may be waiting: the answer does not wait for the passes that admit them.
            outbox(self.session).add(DispatchJobs(wait=False))
        return state

    def set_quota(
        self, team_id: uuid.UUID, max_concurrent_jobs: int | None, gpu_hours_per_period: float | None
    ) -> TeamUsage:
        """Set a team's quotas (None: the deployment's default); a pass after the commit starts
        what a raised quota lets through."""
        team = self.session.get(Team, team_id)
        if team is None:
            raise NotFound(f"team {team_id} not found")
        team.max_concurrent_jobs = max_concurrent_jobs
        team.gpu_hours_per_period = gpu_hours_per_period
        self.session.flush()
        outbox(self.session).add(DispatchJobs())
        return self.usage([team_id])[0]

    def team_usage(self, team_id: uuid.UUID) -> TeamUsage:
        usage = self.usage([team_id])
        if not usage:
            raise NotFound(f"team {team_id} not found")
        return usage[0]

    def active_teams(self) -> list[uuid.UUID]:
        """Teams with jobs waiting or holding a slot."""
        query = sa.select(Job.team_id).where(Job.status.in_(ACTIVE)).distinct()
        return list(self.session.scalars(query))

    def running_total(self) -> int:
        return self._running_total()

    def waiting_total(self) -> int:
        return self.session.scalar(sa.select(sa.func.count()).where(*_waiting_clauses())) or 0

    # ------------------------------------------------------------------------------------------------

    def _lock_state(self, now: datetime) -> DispatchState:
        """Update the dispatcher's row first: concurrent passes queue up behind this write."""
        if self._touch_state(now) == 0:
            # A database made from the models rather than the migrations (tests): add the row,
            # tolerating a concurrent pass that adds it first.
            try:
                with self.session.begin_nested():
                    self.session.add(DispatchState(id=_STATE_ID, paused=False, last_pass_at=now))
            except IntegrityError:
                pass
            self._touch_state(now)
        state = self.session.get(DispatchState, _STATE_ID)
        assert state is not None
        self.session.refresh(state)
        return state

    def _touch_state(self, now: datetime) -> int:
        statement = sa.update(DispatchState).where(DispatchState.id == _STATE_ID).values(last_pass_at=now)
        return self.session.execute(statement).rowcount  # type: ignore[attr-defined, no-any-return]

    def _may_admit(self) -> bool:
        state = self.session.get(DispatchState, _STATE_ID)
        if state is not None and state.paused:
            return False
        return self._running_total() < self.policy.slots

    def _running_total(self) -> int:
        query = sa.select(sa.func.count()).where(Job.status.in_(ACTIVE), Job.admitted_at.is_not(None))
        return self.session.scalar(query) or 0

    def _waiting_teams(self) -> list[uuid.UUID]:
        return list(self.session.scalars(sa.select(Job.team_id).where(*_waiting_clauses()).distinct()))

    def _oldest_waiting(self, team_id: uuid.UUID, count: int) -> list[Job]:
        query = (
            sa.select(Job)
            .where(Job.team_id == team_id, *_waiting_clauses())
            .order_by(Job.created_at, Job.id)
            .limit(count)
            .with_for_update()
        )
        return list(self.session.scalars(query))


def _waiting_clauses() -> tuple[sa.ColumnElement[bool], ...]:
    return (Job.status == JobStatus.QUEUED, Job.admitted_at.is_(None))


def _turn_order(team: TeamUsage) -> tuple[int, float, float]:
    """Whose turn it is: fewest running jobs first, then the team served longest ago (never served
    first), then the team whose oldest job has waited longest."""
    last = team.last_admitted_at.timestamp() if team.last_admitted_at is not None else float("-inf")
    oldest = team.oldest_waiting_at.timestamp() if team.oldest_waiting_at is not None else float("inf")
    return (team.running, last, oldest)


def dispatch_in(
    session_factory: sessionmaker[Session], policy: DispatchPolicy, limit: int | None = None
) -> list[uuid.UUID]:
    """One dispatch pass in its own transaction (the `DispatchJobs` effect, celery beat's tick)."""
    with session_scope(session_factory) as session:
        return Dispatcher(session, policy).run_pass(limit=limit)
