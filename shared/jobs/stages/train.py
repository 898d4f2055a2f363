"""The train stage: fine-tune on the worker, with progress, metrics and checkpoints as it goes.

The training loop itself is `shared.pipeline.train`; this module connects it to the job: it
resumes from the newest checkpoint in the object store after a crash, writes progress and metric
points to the database, uploads each checkpoint as soon as it is written, and stops when a
cancel is requested.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import structlog

from shared.db.models import Job
from shared.jobs.repository import JobRepository
from shared.jobs.service import JobService
from shared.jobs.stages.context import StageContext, job_prefix
from shared.jobs.stages.data import base_model_dir, load_job_rows
from shared.jobs.stages.runner import StageOutcome
from shared.jobs.states import JobStatus
from shared.pipeline.train import TrainRequest, TrainRow, train_classifier
from shared.pipeline.training_callbacks import TrainingProgress

log = structlog.get_logger(__name__)

# Progress is written at most this often; metrics and checkpoints are always written.
PROGRESS_INTERVAL_S = 1.0
CANCEL_POLL_INTERVAL_S = 0.5


class JobTrainingHooks:
    """TrainingHooks that report into the job's rows and upload checkpoints."""

    def __init__(self, ctx: StageContext, job_id: uuid.UUID) -> None:
        self.ctx = ctx
        self.job_id = job_id
        self._last_progress = 0.0
        self._last_cancel_poll = 0.0
        self._cancelled = False

    def on_progress(self, progress: TrainingProgress) -> None:
        now = time.monotonic()
        finished = progress.step >= progress.total_steps
        if now - self._last_progress < PROGRESS_INTERVAL_S and not finished:
            return
        self._last_progress = now
        payload = _progress_payload(progress)
        with self.ctx.session_factory.begin() as session:
            job = session.get(Job, self.job_id)
            assert job is not None
            JobService(session).record_progress(job, payload)

    def on_metrics(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        with self.ctx.session_factory.begin() as session:
            job = session.get(Job, self.job_id)
            assert job is not None
            JobService(session).record_metrics(job, step, epoch, metrics)

    def on_checkpoint(self, step: int, checkpoint_dir: Path) -> None:
        prefix = f"{job_prefix(self.job_id)}/checkpoints/{checkpoint_dir.name}"
        uploaded = self.ctx.store.upload_dir(checkpoint_dir, prefix)
        # The marker goes last: a checkpoint without it was cut off mid-upload and is not resumed.
        self.ctx.store.put_bytes(f"{prefix}/COMPLETE", b"")
        size = sum(info.size for info in uploaded)
        with self.ctx.session_factory.begin() as session:
            job = session.get(Job, self.job_id)
            assert job is not None
            JobService(session).record_checkpoint(
                job,
                step=step,
                epoch=job.progress.get("epoch"),
                object_prefix=prefix,
                size_bytes=size,
                metrics=dict(job.latest_metrics),
            )

    def should_cancel(self) -> bool:
        if self._cancelled:
            return True
        now = time.monotonic()
        if now - self._last_cancel_poll < CANCEL_POLL_INTERVAL_S:
            return False
        self._last_cancel_poll = now
        with self.ctx.session_factory() as session:
            job = JobRepository(session).get(self.job_id)
            self._cancelled = job is None or JobStatus(job.status) == JobStatus.CANCELLING
        return self._cancelled


def run_train(ctx: StageContext, job_id: uuid.UUID) -> StageOutcome:
    spec, rows = load_job_rows(ctx, job_id)
    model_dir = base_model_dir(ctx, job_id)

    work_dir = ctx.job_dir(job_id) / "train"
    resume_from = _restore_newest_checkpoint(ctx, job_id, work_dir / "checkpoints")
    request = TrainRequest(
        base_model_path=model_dir,
        labels=rows.labels,
        train_rows=[TrainRow(text=row.text, label=row.label, text_pair=row.text_pair) for row in rows.train],
        eval_rows=[
            TrainRow(text=row.text, label=row.label, text_pair=row.text_pair) for row in rows.validation
        ],
        method=spec.method,
        hyperparameters=spec.hyperparameters,
        output_dir=work_dir,
        resume_from_checkpoint=resume_from,
    )
    hooks = JobTrainingHooks(ctx, job_id)
    result = train_classifier(request, hooks)

    prefix = job_prefix(job_id)
    summary: dict[str, Any] = {
        "status": result.status,
        "global_step": result.global_step,
        "metrics": result.eval_metrics,
        "train_runtime_s": result.train_runtime_seconds,
        "precision": result.precision,
        "train_samples_per_second": result.train_samples_per_second,
        "trainable_parameters": result.trainable_parameters,
        "total_parameters": result.total_parameters,
        "resumed_from": str(resume_from.name) if resume_from else None,
    }
    if result.status == "cancelled":
        return StageOutcome(result={"train": summary}, cancelled=True)

    ctx.store.upload_dir(result.final_model_dir, f"{prefix}/model")
    summary["model_prefix"] = f"{prefix}/model"
    if result.adapter_dir is not None:
        ctx.store.upload_dir(result.adapter_dir, f"{prefix}/adapter")
        summary["adapter_prefix"] = f"{prefix}/adapter"
    shutil.rmtree(work_dir / "checkpoints", ignore_errors=True)
    return StageOutcome(result={"train": summary})


def _restore_newest_checkpoint(ctx: StageContext, job_id: uuid.UUID, local_dir: Path) -> Path | None:
    """After a crash, the newest completely uploaded checkpoint, downloaded to `local_dir`."""
    with ctx.session_factory() as session:
        checkpoints = JobRepository(session).list_checkpoints(job_id)
    for checkpoint in reversed(checkpoints):
        if not ctx.store.exists(f"{checkpoint.object_prefix}/COMPLETE"):
            continue
        target = local_dir / Path(checkpoint.object_prefix).name
        if not target.is_dir():
            ctx.store.download_dir(checkpoint.object_prefix, target)
        log.info("resuming from checkpoint", job_id=str(job_id), step=checkpoint.step)
        return target
    return None


def _progress_payload(progress: TrainingProgress) -> dict[str, Any]:
    percent = 100.0 * progress.step / progress.total_steps if progress.total_steps else 0.0
    return {
        "step": progress.step,
        "total_steps": progress.total_steps,
        "epoch": progress.epoch,
        "percent": round(percent, 2),
        "loss": progress.loss,
        "learning_rate": progress.learning_rate,
        "samples_per_second": progress.samples_per_second,
        "eta_seconds": progress.eta_seconds,
    }
