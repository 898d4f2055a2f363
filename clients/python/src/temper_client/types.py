"""Typed answers of the Temper API, one model per resource (`temper_client.types`).

They mirror the API's response schemas (a test checks the fields against the served OpenAPI
document). Unknown fields are kept, not refused, so an older client still reads a newer server.
Free-form documents (a job's spec and result, a dataset's report, an evaluation report) stay dicts:
their shape depends on the task and grows with the platform.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Resource(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Team(Resource):
    id: uuid.UUID
    name: str
    max_concurrent_jobs: int | None = None
    created_at: datetime


class TeamQuota(Resource):
    """A team's quotas in effect (its own or the deployment's defaults) and its usage now."""

    team_id: uuid.UUID
    team_name: str
    max_concurrent_jobs: int
    gpu_hours_per_period: float | None = None
    period_days: float
    running: int
    waiting: int
    gpu_hours_used: float
    blocked: str | None = None
    blocked_message: str | None = None


class QueueState(Resource):
    paused: bool
    paused_reason: str | None = None
    slots: int
    running: int
    waiting: int
    teams: list[TeamQuota]


class ApiKey(Resource):
    id: uuid.UUID
    team_id: uuid.UUID
    name: str
    prefix: str
    # Every scope the key holds: "read", "write", "admin" (each implies the ones before it).
    scopes: list[str]
    is_admin: bool
    rate_limit_per_minute: int | None = None
    created_at: datetime
    last_used_at: datetime | None = None
    # In the future for a rotated key still in its grace period.
    revoked_at: datetime | None = None


class ApiKeyIssued(ApiKey):
    key: str = Field(description="The key itself; the API shows it once")


class ApiKeyRotated(ApiKeyIssued):
    """The new key (`key` is its secret, shown once) and the key it replaces."""

    previous: ApiKey


class AuditEvent(Resource):
    id: uuid.UUID
    created_at: datetime
    team_id: uuid.UUID | None = None
    key_id: uuid.UUID | None = None
    key_prefix: str | None = None
    action: str
    target_type: str
    target_id: str | None = None
    request_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class AuditPage(Resource):
    items: list[AuditEvent]
    next_cursor: str | None = None


class BaseModelEntry(Resource):
    """A base model in the catalog that jobs fine-tune."""

    id: uuid.UUID
    name: str
    task_family: str
    source: str
    description: str | None = None
    # The architecture (`config.model_type`), read when the model was registered.
    model_type: str | None = None
    created_at: datetime


class Dataset(Resource):
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


class JobError(Resource):
    code: str
    message: str | None = None
    stage: str | None = None


class JobProgress(Resource):
    step: int = 0
    total_steps: int = 0
    epoch: float | None = None
    percent: float = 0.0
    loss: float | None = None
    learning_rate: float | None = None
    samples_per_second: float | None = None
    # Instruction tuning counts real (non-padding) tokens too.
    tokens_per_second: float | None = None
    eta_seconds: float | None = None


JobStatus = Literal[
    "queued",
    "validating",
    "training",
    "evaluating",
    "exporting",
    "publishing",
    "succeeded",
    "failed",
    "cancelling",
    "cancelled",
]
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class JobQueue(Resource):
    """Where a queued job stands: position 1 starts next; `reason` says why it waits."""

    position: int
    waiting: int
    reason: str
    message: str


class Job(Resource):
    id: uuid.UUID
    name: str | None = None
    status: str
    stage: str | None = None
    attempt: int
    completed_stages: list[str]
    progress: JobProgress
    latest_metrics: dict[str, float]
    error: JobError | None = None
    spec: dict[str, Any]
    result: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    admitted_at: datetime | None = None
    # The largest resident memory a stage process of the job was seen to use, in bytes.
    peak_memory_bytes: int | None = None
    queue: JobQueue | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


class ScriptShare(Resource):
    """Letters of one Unicode script in the text, and their share of all letters."""

    script: str
    letters: int
    share: float


class FitWarning(Resource):
    """A tokenizer-fit measure over its threshold ("unknown_tokens", "byte_fallback", "truncation")."""

    code: str
    message: str
    suggestion: str
    value: float
    threshold: float


class TokenizerFit(Resource):
    """How the base model's tokenizer fits the train text: unknown tokens, bytes spelled out one by
    one, the scripts found, and the rows max_seq_length cuts (a job's validation result and a dry run)."""

    tokenizer: str
    rows: int
    rows_total: int
    characters: int
    tokens: int
    tokens_per_character: float
    unknown_tokens: int
    unknown_share: float
    byte_fallback_share: float | None = None
    scripts: list[ScriptShare] = []
    unknown_scripts: list[ScriptShare] = []
    token_lengths: dict[str, float | int | None] = {}
    max_length: int | None = None
    truncated_rows: int = 0
    truncated_share: float = 0.0
    warnings: list[FitWarning] = []


class DryRunTokens(Resource):
    """Tokens of one split as the model reads them, measured on `sampled_rows` and scaled to `rows`."""

    split: str
    rows: int
    sampled_rows: int
    tokens: int
    mean: float
    p95: float
    max: int
    truncated_share: float


class DryRunSteps(Resource):
    train_rows: int
    batch_size: int
    gradient_accumulation_steps: int
    epochs: float
    steps_per_epoch: int
    total_steps: int
    mean_tokens_per_row: float
    tokens_per_epoch: int
    total_tokens: int


class DryRunDuration(Resource):
    """The estimated duration: "measured" (earlier jobs of the base model) or "first_principles"."""

    basis: str
    seconds: float
    train_seconds: float
    stages: dict[str, float | None]
    explanation: list[str]
    reference_jobs: list[uuid.UUID]
    other_team_jobs: int
    tokens_per_second: float | None = None
    samples_per_second: float | None = None


class DryRunMemory(Resource):
    worker_class: str
    peak_bytes: int
    components: dict[str, int]
    explanation: list[str]


class DryRunBaseModel(Resource):
    name: str
    model_type: str | None = None
    parameters: int
    embedding_parameters: int
    trainable_parameters: int
    counted_from: str
    layers: int
    hidden_size: int


class JobDryRun(Resource):
    """`jobs.dry_run`: the job as it would run; nothing was stored or started."""

    spec: dict[str, Any]
    worker_class: str
    base_model: DryRunBaseModel
    tokens: list[DryRunTokens]
    steps: DryRunSteps
    duration: DryRunDuration
    memory: DryRunMemory
    tokenizer_fit: TokenizerFit
    warnings: list[str]
    notes: list[str]


class JobPage(Resource):
    items: list[Job]
    next_cursor: str | None = None


class JobEvent(Resource):
    """One entry of a job's history: a transition, progress, a log line, a checkpoint, ..."""

    id: int
    type: str
    from_status: str | None = None
    to_status: str | None = None
    message: str | None = None
    data: dict[str, Any]
    created_at: datetime


class EventPage(Resource):
    items: list[JobEvent]
    next_after: int | None = None


class MetricPoint(Resource):
    name: str
    value: float
    step: int
    epoch: float | None = None


class MetricSeries(Resource):
    name: str
    points: list[MetricPoint]


class ArtifactFile(Resource):
    """A file of a job (a checkpoint's, or an output) with where to download it."""

    path: str
    size: int
    download_url: str


class Checkpoint(Resource):
    id: uuid.UUID
    step: int
    epoch: float | None = None
    size_bytes: int
    metrics: dict[str, Any]
    created_at: datetime
    object_prefix: str
    files: list[ArtifactFile] = []


class RegisteredModel(Resource):
    """A published model: its name, where Triton finds it, and the production version."""

    name: str
    repository_name: str
    task: str
    production_version: int | None = None
    created_at: datetime


class ModelDetail(RegisteredModel):
    versions: list[int]
    models: list[str] = Field(description="The Triton model names of the newest version")


class ModelVersion(Resource):
    version: int
    job_id: uuid.UUID
    formats: list[str]
    lineage: dict[str, Any]
    created_at: datetime


class Prediction(Resource):
    label: str
    scores: dict[str, float]


class PredictResult(Resource):
    model: str
    version: int
    predictions: list[Prediction]


class ChatMessage(Resource):
    role: Literal["system", "user", "assistant"]
    content: str


class Generation(Resource):
    """A whole generated answer (`models.generate`)."""

    model: str
    version: int
    text: str
    # "eos" (the model ended its turn), "length" or "stop".
    finish_reason: str | None = None
    # Where the serving path counts them (the embedded runner does; Triton's stream does not).
    tokens: int | None = None


class GenerationToken(Resource):
    """A piece of text as it is generated (`models.generate_stream`)."""

    text: str


class GenerationEnd(Resource):
    """The last event of a generation stream: why it stopped and how many tokens it made."""

    finish_reason: str | None = None
    tokens: int | None = None


class StudyVariantError(Resource):
    code: str
    message: str | None = None
    stage: str | None = None


class StudyVariantChange(Resource):
    """The variant's metric minus the base variant's on the same test rows, with a bootstrap CI."""

    metric: str
    delta: float
    low: float | None = None
    high: float | None = None
    confidence: float
    rows: int


class StudyVariant(Resource):
    position: int
    overrides: dict[str, Any]
    status: str
    job_id: uuid.UUID | None = None
    job_status: str | None = None
    metric_value: float | None = None
    rank: int | None = None
    error: StudyVariantError | None = None
    change: StudyVariantChange | None = None
    change_summary: str | None = None


class StudySummary(Resource):
    id: uuid.UUID
    name: str | None = None
    status: str
    mode: str | None = None
    metric: str
    direction: str
    max_concurrency: int
    trial_budget: int
    variant_count: int
    best: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime


class Study(StudySummary):
    base_spec: dict[str, Any]
    variants_spec: dict[str, Any]
    result: dict[str, Any]
    variants: list[StudyVariant]


class StudyPage(Resource):
    items: list[StudySummary]
    next_cursor: str | None = None


class WebhookEndpoint(Resource):
    """Where the team's job and study events are delivered (`webhooks.create`)."""

    id: uuid.UUID
    url: str
    description: str | None = None
    events: list[str]
    active: bool
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreated(WebhookEndpoint):
    secret: str = Field(description="Signs every delivery; the API shows it once")


class WebhookDelivery(Resource):
    """One attempt to deliver one event; a retry is another attempt with the same event_id."""

    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    attempt: int
    # "pending", "succeeded" (a 2xx) or "failed".
    status: str
    status_code: int | None = None
    error: str | None = None
    duration_ms: int | None = None
    next_retry_at: datetime | None = None
    created_at: datetime
    finished_at: datetime | None = None
    payload: dict[str, Any]


class WebhookDeliveryPage(Resource):
    items: list[WebhookDelivery]
    next_cursor: str | None = None


class Readiness(Resource):
    """`GET /readyz`: whether the API's database, broker and object store answer."""

    ready: bool
    checks: dict[str, dict[str, Any]]
