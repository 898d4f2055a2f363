from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from sqlalchemy.orm import Session
from sse_starlette.sse import EventSourceResponse

from services.api import schemas
from services.api.deps import AuditorDep, ReadDep, SessionDep, SettingsDep, StoreDep, WriteDep
from services.api.openapi import errors, json_document, text_answer
from services.api.presenters import present_files, present_job
from shared.errors import InvalidInput, NotFound
from shared.jobs.dispatch import Dispatcher, DispatchPolicy
from shared.jobs.dry_run import DryRunLimits, DryRunService
from shared.jobs.layout import JobLayout
from shared.jobs.repository import JobRepository
from shared.jobs.service import JobService
from shared.jobs.spec import JobSpec
from shared.jobs.states import TERMINAL, JobStatus
from shared.settings import Settings
from shared.storage.base import ObjectStore
from shared.storage.errors import InvalidKey, ObjectNotFound

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

SSE_POLL_INTERVAL_S = 0.5


@router.post(
    "",
    response_model=schemas.Job,
    status_code=status.HTTP_201_CREATED,
    operation_id="jobs_create",
    responses={
        200: {
            "model": schemas.Job | schemas.JobDryRun,
            "description": "The job an earlier request with this Idempotency-Key made; with "
            "dry_run=true, the job as it would run (JobDryRun), and nothing stored",
        },
        **errors(403, 422, 429),
    },
)
def submit_job(
    body: schemas.JobCreate,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    principal: WriteDep,
    audit: AuditorDep,
    idempotency_key: Annotated[
        str | None,
        Header(max_length=200, description="Sending the same key again returns the first job, not a new one"),
    ] = None,
    dry_run: Annotated[
        bool,
        Query(
            description="Check the spec and answer what the job would do (tokens, steps, estimated "
            "duration and memory, tokenizer fit) without storing or starting anything"
        ),
    ] = False,
) -> object:
    """Submit a fine-tuning job; it is queued and validated by a worker. With dry_run=true, nothing
    is stored: the answer is the job as it would run, and a bad spec gets the same error."""
    spec = JobSpec.model_validate(body.model_dump(exclude={"name"}))
    if dry_run:
        return _dry_run(spec, session, settings, store, principal.team_id)
    outcome = JobService(session, gpu_workers=settings.gpu_workers).submit(
        principal.team_id, spec, name=body.name, idempotency_key=idempotency_key
    )
    if outcome.created:
        audit.record(
            "job.submit",
            "job",
            outcome.job.id,
            {"name": body.name, "base_model": spec.base_model, "method": spec.method},
        )
    # A dispatch pass is on the session's outbox: it runs once the request's session commits and
    # sends the validate task if the job may start now.
    answer = schemas.Job.model_validate(present_job(outcome.job))
    # Serialized by pydantic in one pass (the answer is the route's Job), as the list does: FastAPI
    # would validate the answer a second time and encode it with the standard-library encoder.
    return Response(
        answer.model_dump_json(),
        status_code=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK,
        media_type="application/json",
    )


def _dry_run(
    spec: JobSpec, session: Session, settings: Settings, store: ObjectStore, team_id: uuid.UUID
) -> JSONResponse:
    limits = DryRunLimits(
        sample_rows=settings.dry_run_sample_rows,
        cpu_flops=settings.estimate_cpu_flops,
        gpu_flops=settings.estimate_gpu_flops,
        worker_memory_bytes=int(settings.train_worker_memory_gib * 1024**3)
        if settings.train_worker_memory_gib
        else None,
    )
    service = DryRunService(
        session, store, settings.work_dir / "dry-run", gpu_workers=settings.gpu_workers, limits=limits
    )
    answer = schemas.JobDryRun.model_validate(service.dry_run(team_id, spec))
    # Not the route's response model (a Job): the dry run's own, with 200 (nothing was created).
    return JSONResponse(answer.model_dump(mode="json"), status_code=status.HTTP_200_OK)


@router.get("", response_model=schemas.JobPage, operation_id="jobs_list", responses=errors(422))
def list_jobs(
    session: SessionDep,
    principal: ReadDep,
    status_filter: Annotated[list[JobStatus] | None, Query(alias="status")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> object:
    jobs, next_cursor = JobService(session).list(principal.team_id, status_filter, cursor, limit)
    page = schemas.JobPage.model_validate(
        {"items": [present_job(job) for job in jobs], "next_cursor": next_cursor}
    )
    # Serialized by pydantic in one pass: the busiest read skips FastAPI's second validation and
    # the standard-library JSON encoder (the answer is the same JobPage).
    return Response(page.model_dump_json(), media_type="application/json")


@router.get("/{job_id}", response_model=schemas.Job, operation_id="jobs_get", responses=errors(404, 422))
def get_job(job_id: uuid.UUID, session: SessionDep, settings: SettingsDep, principal: ReadDep) -> object:
    """The job; a queued one also says where it stands in the queue and why it waits."""
    job = JobService(session).get(principal.team_id, job_id)
    queue = Dispatcher(session, DispatchPolicy.from_settings(settings)).position(job)
    return present_job(job, queue)


@router.post(
    "/{job_id}/cancel",
    response_model=schemas.Job,
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="jobs_cancel",
    responses=errors(403, 404, 409, 422),
)
def cancel_job(job_id: uuid.UUID, session: SessionDep, principal: WriteDep, audit: AuditorDep) -> object:
    job = JobService(session).request_cancel(principal.team_id, job_id)
    audit.record("job.cancel", "job", job_id, {"status": JobStatus(job.status).value})
    return present_job(job)


@router.get(
    "/{job_id}/events",
    response_model=schemas.EventPage,
    operation_id="jobs_events_list",
    responses=errors(404, 422),
)
def list_events(
    job_id: uuid.UUID,
    session: SessionDep,
    principal: ReadDep,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    event_type: Annotated[str | None, Query(alias="type")] = None,
) -> object:
    JobService(session).get(principal.team_id, job_id)
    events = JobRepository(session).list_events(job_id, after_id=after, limit=limit, event_type=event_type)
    next_after = events[-1].id if len(events) == limit else None
    return {"items": events, "next_after": next_after}


@router.get(
    "/{job_id}/events/stream",
    operation_id="jobs_events_stream",
    response_class=EventSourceResponse,
    responses={
        **text_answer(
            "text/event-stream",
            "Server-sent events: `id` is the event id, `event` its type, `data` a JobEvent as JSON; "
            "a last `end` event when the job has finished. Reconnect with `after` = the last id.",
        ),
        **errors(404, 422),
    },
)
async def stream_events(
    job_id: uuid.UUID, request: Request, principal: ReadDep, after: Annotated[int, Query(ge=0)] = 0
) -> EventSourceResponse:
    """Server-sent events: every job event as it is written, until the job finishes."""
    factory = request.app.state.session_factory

    def poll(last_id: int) -> tuple[list[schemas.JobEvent], bool]:
        with factory() as session:
            job = JobService(session).get(principal.team_id, job_id)
            events = JobRepository(session).list_events(job_id, after_id=last_id, limit=500)
            return [schemas.JobEvent.model_validate(event) for event in events], JobStatus(
                job.status
            ) in TERMINAL

    # Check access before the stream starts, so a wrong id answers 404 rather than an empty stream.
    await asyncio.to_thread(poll, 2**62)

    async def generate():
        last_id = after
        while True:
            events, finished = await asyncio.to_thread(poll, last_id)
            for event in events:
                last_id = event.id
                yield {"id": str(event.id), "event": event.type, "data": event.model_dump_json()}
            if finished and not events:
                yield {"event": "end", "data": json.dumps({"job_id": str(job_id)})}
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(SSE_POLL_INTERVAL_S)

    return EventSourceResponse(generate())


@router.get(
    "/{job_id}/metrics",
    response_model=list[schemas.MetricSeries],
    operation_id="jobs_metrics_list",
    responses=errors(404, 422),
)
def get_metrics(
    job_id: uuid.UUID,
    session: SessionDep,
    principal: ReadDep,
    name: Annotated[list[str] | None, Query()] = None,
) -> object:
    JobService(session).get(principal.team_id, job_id)
    series: dict[str, list] = {}
    for point in JobRepository(session).list_metric_points(job_id, names=name):
        series.setdefault(point.name, []).append(point)
    return [{"name": key, "points": points} for key, points in sorted(series.items())]


@router.get(
    "/{job_id}/checkpoints",
    response_model=list[schemas.Checkpoint],
    operation_id="jobs_checkpoints_list",
    responses=errors(404, 422),
)
def list_checkpoints(
    job_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    principal: ReadDep,
) -> object:
    JobService(session).get(principal.team_id, job_id)
    checkpoints = JobRepository(session).list_checkpoints(job_id)
    return [
        {
            **schemas.Checkpoint.model_validate(checkpoint).model_dump(exclude={"files"}),
            "files": present_files(request, store, settings, job_id, checkpoint.object_prefix),
        }
        for checkpoint in checkpoints
    ]


@router.get(
    "/{job_id}/artifacts",
    response_model=list[schemas.CheckpointFile],
    operation_id="jobs_artifacts_list",
    responses=errors(404, 422),
)
def list_artifacts(
    job_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    principal: ReadDep,
) -> object:
    """The job's outputs other than checkpoints: the model, the adapter, reports, exports."""
    JobService(session).get(principal.team_id, job_id)
    files = present_files(request, store, settings, job_id, JobLayout(job_id).root)
    return [file for file in files if not file["path"].startswith("checkpoints/")]


@router.get(
    "/{job_id}/evaluation",
    operation_id="jobs_evaluation_get",
    responses={**json_document("The evaluation report"), **errors(404, 422)},
)
def get_evaluation(job_id: uuid.UUID, session: SessionDep, store: StoreDep, principal: ReadDep) -> Response:
    """The full evaluation report (JSON): metrics, per-class, calibration, baseline, gate, robustness."""
    return _evaluation_file(job_id, session, store, principal, "report.json", "application/json")


@router.get(
    "/{job_id}/evaluation.html",
    operation_id="jobs_evaluation_html_get",
    response_class=HTMLResponse,
    responses=errors(404, 422),
)
def get_evaluation_html(
    job_id: uuid.UUID, session: SessionDep, store: StoreDep, principal: ReadDep
) -> Response:
    """The report as one self-contained page (pictures embedded)."""
    return _evaluation_file(job_id, session, store, principal, "report.html", "text/html; charset=utf-8")


def _evaluation_file(job_id, session, store, principal, name: str, media_type: str) -> Response:
    JobService(session).get(principal.team_id, job_id)
    try:
        content = store.get_bytes(JobLayout(job_id).evaluation_file(name))
    except ObjectNotFound as exc:
        raise NotFound(f"job {job_id} has no evaluation yet") from exc
    return Response(content=content, media_type=media_type)


@router.get(
    "/{job_id}/files/{path:path}",
    operation_id="jobs_files_download",
    response_class=StreamingResponse,
    responses={
        **text_answer("application/octet-stream", "The file's bytes", binary=True),
        **errors(404, 422),
    },
)
def download_file(job_id: uuid.UUID, path: str, session: SessionDep, store: StoreDep, principal: ReadDep):
    """Streams one of the job's objects (used where the store has no presigned URLs)."""
    JobService(session).get(principal.team_id, job_id)
    if ".." in path.split("/"):
        raise InvalidInput("the path must stay inside the job", details={"field": "path"})
    try:
        key = JobLayout(job_id).file(path)
        info = store.stat(key)
    except ObjectNotFound as exc:
        raise NotFound(f"job {job_id} has no file '{path}'") from exc
    except InvalidKey as exc:
        raise InvalidInput(f"'{path}' cannot name a file: {exc.reason}", details={"field": "path"}) from exc

    def chunks():
        with store.open_read(key) as stream:
            while chunk := stream.read(1024 * 1024):
                yield chunk

    return StreamingResponse(
        chunks(),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(info.size),
            "Content-Disposition": f'attachment; filename="{path.split("/")[-1]}"',
        },
    )
