"""Admission, for admins: the queue as the dispatcher sees it, pausing it, and each team's quotas."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from services.api import schemas
from services.api.deps import AdminDep, AuditorDep, SessionDep, SettingsDep
from services.api.openapi import errors
from shared.jobs.dispatch import Dispatcher, DispatchPolicy, TeamUsage
from shared.teams.repository import TeamRepository

router = APIRouter(prefix="/v1", tags=["admin"])


def _dispatcher(session: SessionDep, settings: SettingsDep) -> Dispatcher:
    return Dispatcher(session, DispatchPolicy.from_settings(settings))


def _quota_view(usage: TeamUsage, team_name: str) -> schemas.TeamQuota:
    blocked = usage.blocked
    return schemas.TeamQuota(
        team_id=usage.team_id,
        team_name=team_name,
        max_concurrent_jobs=usage.max_concurrent_jobs,
        gpu_hours_per_period=usage.gpu_hours_per_period,
        period_days=usage.period.total_seconds() / 86400,
        running=usage.running,
        waiting=usage.waiting,
        gpu_hours_used=round(usage.gpu_hours_used, 4),
        blocked=blocked[0] if blocked else None,
        blocked_message=blocked[1] if blocked else None,
    )


def _queue_view(dispatcher: Dispatcher, session: SessionDep) -> schemas.QueueState:
    state = dispatcher.state()
    teams = TeamRepository(session)
    waiting_or_running = dispatcher.active_teams()
    views = []
    for usage in dispatcher.usage(waiting_or_running):
        team = teams.get(usage.team_id)
        views.append(_quota_view(usage, team.name if team else "?"))
    return schemas.QueueState(
        paused=state.paused,
        paused_reason=state.paused_reason,
        slots=dispatcher.policy.slots,
        running=dispatcher.running_total(),
        waiting=dispatcher.waiting_total(),
        teams=sorted(views, key=lambda view: view.team_name),
    )


@router.get("/queue", response_model=schemas.QueueState, operation_id="queue_get", responses=errors(403))
def get_queue(session: SessionDep, settings: SettingsDep, _: AdminDep) -> object:
    """Slots, running and waiting jobs, and each team with jobs in the queue: its quotas, its usage
    and what holds it back."""
    return _queue_view(_dispatcher(session, settings), session)


@router.post(
    "/queue/pause", response_model=schemas.QueueState, operation_id="queue_pause", responses=errors(403, 422)
)
def pause_queue(
    body: schemas.QueuePause, session: SessionDep, settings: SettingsDep, _: AdminDep, audit: AuditorDep
) -> object:
    """Stop admitting jobs (running ones go on; new ones are accepted and wait), e.g. before
    maintenance of the workers."""
    dispatcher = _dispatcher(session, settings)
    dispatcher.set_paused(True, body.reason)
    audit.record("admin.queue.pause", "queue", None, {"reason": body.reason})
    return _queue_view(dispatcher, session)


@router.post(
    "/queue/resume", response_model=schemas.QueueState, operation_id="queue_resume", responses=errors(403)
)
def resume_queue(session: SessionDep, settings: SettingsDep, _: AdminDep, audit: AuditorDep) -> object:
    """Admit jobs again. The answer does not wait for the admissions: the dispatcher starts on the
    waiting jobs right after it, as slots and quotas allow."""
    dispatcher = _dispatcher(session, settings)
    dispatcher.set_paused(False)
    audit.record("admin.queue.resume", "queue")
    return _queue_view(dispatcher, session)


@router.get(
    "/teams/{team_id}/quota",
    response_model=schemas.TeamQuota,
    operation_id="quotas_get",
    responses=errors(403, 404, 422),
)
def get_quota(team_id: uuid.UUID, session: SessionDep, settings: SettingsDep, _: AdminDep) -> object:
    usage = _dispatcher(session, settings).team_usage(team_id)
    team = TeamRepository(session).get(team_id)
    return _quota_view(usage, team.name if team else "?")


@router.put(
    "/teams/{team_id}/quota",
    response_model=schemas.TeamQuota,
    operation_id="quotas_set",
    responses=errors(403, 404, 422),
)
def set_quota(
    team_id: uuid.UUID,
    body: schemas.QuotaUpdate,
    session: SessionDep,
    settings: SettingsDep,
    _: AdminDep,
    audit: AuditorDep,
) -> object:
    """Set a team's quotas; null means the deployment's default. Jobs a raised quota lets through
    start at once."""
    usage = _dispatcher(session, settings).set_quota(
        team_id, body.max_concurrent_jobs, body.gpu_hours_per_period
    )
    audit.record("admin.quota.set", "team", team_id, body.model_dump())
    team = TeamRepository(session).get(team_id)
    return _quota_view(usage, team.name if team else "?")
