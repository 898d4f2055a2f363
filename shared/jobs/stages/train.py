"""The train stage: fine-tune on the worker, with progress, metrics and checkpoints as it goes.

The training loop itself is `shared.pipeline.train`; this module connects it to the job: it
resumes from the newest checkpoint in the object store after a crash, writes progress and metric
points through the run handle, uploads each checkpoint as soon as it is written, and stops when a
cancel is requested or its worker shuts down (then it hands the job back: `shutdown`).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import structlog

from shared.jobs.layout import COMPLETE_MARKER
from shared.jobs.results import TrainResult
from shared.jobs.run import JobRun
from shared.jobs.stages import shutdown
from shared.jobs.stages.data import base_model_dir, download_model, load_job_rows
from shared.jobs.stages.memory import fit_to_worker
from shared.jobs.stages.runner import StageOutcome
from shared.observability import TRAIN_SAMPLES_PER_SECOND, TRAIN_TOKENS_PER_SECOND
from shared.pipeline.distill import Distillation
from shared.pipeline.train import TrainRequest, TrainRow, train_classifier
from shared.pipeline.training_callbacks import TrainingProgress

log = structlog.get_logger(__name__)

# Progress is written at most this often; metrics and checkpoints are always written.
PROGRESS_INTERVAL_S = 1.0
CANCEL_POLL_INTERVAL_S = 0.5


class JobTrainingHooks:
    """TrainingHooks that report into the job and upload checkpoints.

    The pipeline knows one reason to stop early (`should_cancel`); a worker shutting down is
    another, and it stops the run the same way (finish the step, save a checkpoint), but then
    `stopped_for_shutdown` tells the stage to hand the job back rather than end it cancelled.
    """

    def __init__(self, run: JobRun) -> None:
        self.run = run
        self._last_progress = 0.0
        self._last_cancel_poll = 0.0
        self._cancelled = False
        self.stopped_for_shutdown = False

    def on_progress(self, progress: TrainingProgress) -> None:
        now = time.monotonic()
        finished = progress.step >= progress.total_steps
        if now - self._last_progress < PROGRESS_INTERVAL_S and not finished:
            return
        self._last_progress = now
        TRAIN_SAMPLES_PER_SECOND.labels(stage=self.run.stage).set(progress.samples_per_second)
        if progress.tokens_per_second is not None:
            TRAIN_TOKENS_PER_SECOND.labels(stage=self.run.stage).set(progress.tokens_per_second)
        self.run.record_progress(progress_payload(progress))

    def on_metrics(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        self.run.record_metrics(step, epoch, metrics)

    def on_checkpoint(self, step: int, checkpoint_dir: Path) -> None:
        prefix = self.run.layout.checkpoint(checkpoint_dir.name)
        uploaded = self.run.ctx.store.upload_dir(checkpoint_dir, prefix)
        # The marker goes last: a checkpoint without it was cut off mid-upload and is not resumed.
        self.run.ctx.store.put_bytes(f"{prefix}/{COMPLETE_MARKER}", b"")
        self.run.record_checkpoint(step, prefix, sum(info.size for info in uploaded))

    def should_cancel(self) -> bool:
        if self._cancelled or self.stopped_for_shutdown:
            return True
        if shutdown.requested():
            self.stopped_for_shutdown = True
            return True
        now = time.monotonic()
        if now - self._last_cancel_poll < CANCEL_POLL_INTERVAL_S:
            return False
        self._last_cancel_poll = now
        self._cancelled = self.run.cancel_requested()
        return self._cancelled


def run_train(run: JobRun) -> StageOutcome:
    rows = load_job_rows(run)
    spec = run.spec
    work_dir = run.work_dir("train")
    resume_from = restore_newest_checkpoint(run, work_dir / "checkpoints")
    model_dir = base_model_dir(run)
    hyperparameters, auto_batch = fit_to_worker(run, model_dir)
    request = TrainRequest(
        distillation=_distillation(run),
        base_model_path=model_dir,
        labels=rows.labels,
        train_rows=[TrainRow(text=row.text, label=row.label, text_pair=row.text_pair) for row in rows.train],
        eval_rows=[
            TrainRow(text=row.text, label=row.label, text_pair=row.text_pair) for row in rows.validation
        ],
        method=spec.method,
        hyperparameters=hyperparameters,
        output_dir=work_dir,
        resume_from_checkpoint=resume_from,
    )
    hooks = JobTrainingHooks(run)
    trained = train_classifier(request, hooks)
    result = TrainResult(
        status=trained.status,
        global_step=trained.global_step,
        metrics=trained.eval_metrics,
        train_runtime_s=trained.train_runtime_seconds,
        precision=trained.precision,
        train_samples_per_second=trained.train_samples_per_second,
        train_tokens_per_second=trained.train_tokens_per_second,
        device=trained.device,
        trainable_parameters=trained.trainable_parameters,
        total_parameters=trained.total_parameters,
        resumed_from=resume_from.name if resume_from else None,
        auto_batch=auto_batch,
    )
    return finish_training(run, hooks, result, trained.final_model_dir, trained.adapter_dir, work_dir)


def finish_training(
    run: JobRun,
    hooks: JobTrainingHooks,
    result: TrainResult,
    final_model_dir: Path | None,
    adapter_dir: Path | None,
    work_dir: Path,
) -> StageOutcome:
    """Upload what a finished run produced (the model, the adapter) and drop its local checkpoints;
    a cancelled run (no model) ends the stage cancelled, its checkpoints kept in the store, and a
    run stopped by its worker's shutdown hands the job back from its checkpoint."""
    if result.status == "cancelled" and hooks.stopped_for_shutdown:
        raise shutdown.WorkerShuttingDown(
            f"worker shutting down; train handed back at step {result.global_step}", step=result.global_step
        )
    if result.status == "cancelled" or final_model_dir is None:
        return StageOutcome(result=result, cancelled=True)
    run.ctx.store.upload_dir(final_model_dir, run.layout.model)
    result.model_prefix = run.layout.model
    if adapter_dir is not None:
        run.ctx.store.upload_dir(adapter_dir, run.layout.adapter)
        result.adapter_prefix = run.layout.adapter
    shutil.rmtree(work_dir / "checkpoints", ignore_errors=True)
    return StageOutcome(result=result)


def _distillation(run: JobRun) -> Distillation | None:
    """The teacher of a distill job, its model downloaded to this worker."""
    spec = run.spec.distillation
    if spec is None:
        return None
    teacher = run.baseline_model(f"job:{spec.teacher_job_id}")
    teacher_dir = download_model(run, teacher.model_prefix, run.work_dir("teacher"))
    return Distillation(teacher_dir=teacher_dir, temperature=spec.temperature, alpha=spec.alpha)


def restore_newest_checkpoint(run: JobRun, local_dir: Path) -> Path | None:
    """After a crash, the newest completely uploaded checkpoint, downloaded to `local_dir`."""
    for checkpoint in reversed(run.checkpoints()):
        if not run.ctx.store.exists(f"{checkpoint.object_prefix}/{COMPLETE_MARKER}"):
            continue
        target = local_dir / Path(checkpoint.object_prefix).name
        if not target.is_dir():
            run.ctx.store.download_dir(checkpoint.object_prefix, target)
        log.info("resuming from checkpoint", job_id=str(run.job_id), step=checkpoint.step)
        return target
    return None


def progress_payload(progress: TrainingProgress) -> dict[str, Any]:
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
        **(
            {"tokens_per_second": progress.tokens_per_second}
            if progress.tokens_per_second is not None
            else {}
        ),
    }
