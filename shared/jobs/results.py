"""What each stage hands on: one typed model per stage result, stored under its name in `job.result`.

A stage returns one of these; the runner stores it validated (`JobRun.record_result`) and a later
stage reads it back typed (`JobRun.result(ExportResult)`), so publish reads `export.formats`, not
`job.result["export"]["formats"]`. The API shows the same documents as the job's `result`.

Fields that are reports in their own right (parity figures, overlap tables, a gate's reasons) stay
dictionaries: their shape belongs to the pipeline module that makes them.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.data.tokenizer_fit import TokenizerFitReport


class StageResult(BaseModel):
    """Base of every stage result; `key` is where it lives in `job.result`."""

    # Results written by an older version may carry fields since dropped: read them anyway.
    model_config = ConfigDict(extra="ignore")
    key: ClassVar[str]


class ScriptShare(BaseModel):
    """Letters of one Unicode script in the text, and their share of all letters."""

    script: str
    letters: int
    share: float


class FitWarning(BaseModel):
    """A fit measure over its threshold, with what to do about it."""

    code: Literal["unknown_tokens", "byte_fallback", "truncation"]
    message: str
    suggestion: str
    value: float
    threshold: float


class TokenizerFit(BaseModel):
    """How the base model's tokenizer fits the train text (`shared.data.tokenizer_fit`), measured on
    `rows` of the split's `rows_total` rows before any GPU time."""

    tokenizer: str
    rows: int
    rows_total: int
    characters: int
    tokens: int
    tokens_per_character: float
    unknown_tokens: int
    unknown_share: float
    # Bytes of the text spelled out byte by byte; None when the tokenizer gives no character offsets.
    byte_fallback_share: float | None = None
    scripts: list[ScriptShare] = Field(default_factory=list)
    # The scripts of the characters that became unknown tokens.
    unknown_scripts: list[ScriptShare] = Field(default_factory=list)
    token_lengths: dict[str, float | int | None] = Field(default_factory=dict)
    max_length: int | None = None
    truncated_rows: int = 0
    truncated_share: float = 0.0
    warnings: list[FitWarning] = Field(default_factory=list)

    @classmethod
    def of(cls, report: TokenizerFitReport, rows_total: int) -> TokenizerFit:
        return cls.model_validate({**report.as_dict(), "rows_total": rows_total})


class ValidationResult(StageResult):
    key: ClassVar[str] = "validation"

    rows: dict[str, int | None]
    labels: list[str] = Field(default_factory=list)
    train_label_counts: dict[str, int] = Field(default_factory=dict)
    # Percentiles of the train rows' lengths in the base model's tokens, and the share cut off.
    token_lengths: dict[str, Any] = Field(default_factory=dict)
    overlap: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    # Instruction data only: turns, answer-token share, truncated rows under the chat template.
    instructions: dict[str, Any] | None = None
    # Unknown tokens, byte fallback, scripts and truncation of the train text under the base
    # model's tokenizer; its warnings are among `warnings` (truncation is said once, by the stage).
    tokenizer_fit: TokenizerFit | None = None


class AutoBatch(BaseModel):
    """What a batch size of "auto" resolved to on the worker that trained (`shared.jobs.stages.memory`)."""

    per_device_batch_size: int
    gradient_accumulation_steps: int
    global_batch_size: int
    estimated_peak_bytes: int
    needed_bytes: int
    available_bytes: int
    worker_class: Literal["cpu", "gpu"]


class TrainResult(StageResult):
    key: ClassVar[str] = "train"

    status: Literal["completed", "cancelled"]
    global_step: int
    metrics: dict[str, float] = Field(default_factory=dict)
    train_runtime_s: float = 0.0
    precision: str = "fp32"
    train_samples_per_second: float = 0.0
    # Real (non-padding) tokens per second, cut at max_seq_length; what dry-run estimates are based on.
    train_tokens_per_second: float | None = None
    # Where it ran: "cpu" or "cuda:<device name>" (None on results older than the field).
    device: str | None = None
    trainable_parameters: int = 0
    total_parameters: int = 0
    resumed_from: str | None = None
    # Causal LMs: how batches were formed ("packed" or "length_grouped") and where the chat
    # template came from ("spec", "model" or "fallback").
    packing: str | None = None
    chat_template: str | None = None
    model_prefix: str | None = None
    adapter_prefix: str | None = None
    # Set when the spec's batch size was "auto".
    auto_batch: AutoBatch | None = None

    @property
    def has_model(self) -> bool:
        return self.model_prefix is not None


class MetricDelta(BaseModel):
    delta: float | None = None
    # The bootstrap interval of the delta: {"low", "high", "confidence", ...}.
    interval: dict[str, Any] | None = None


class BaselineSummary(BaseModel):
    name: str
    metrics: dict[str, float | None] = Field(default_factory=dict)


class EvaluationResult(StageResult):
    key: ClassVar[str] = "evaluation"

    split: str
    rows: int
    metrics: dict[str, float | None]
    baseline: BaselineSummary
    deltas: dict[str, MetricDelta] = Field(default_factory=dict)
    # The significance test of the candidate against the baseline (McNemar for classification,
    # a paired bootstrap on answer loss for generation).
    significance: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    report_prefix: str

    @property
    def gate_passed(self) -> bool:
        """True when there is no gate or it passed."""
        return self.gate is None or bool(self.gate.get("passed"))


class ExportVariant(BaseModel):
    """One exported file (or folder) with the figures that show it matches the trained model."""

    path: str
    size_bytes: int | None = None
    seconds: float | None = None
    parity: dict[str, Any] = Field(default_factory=dict)
    # Set when the variant missed its bar: it is recorded with its figures and left out.
    rejected: str | None = None
    # CPU serving latency measured in the export stage (batch 1 at max_length).
    latency: dict[str, Any] | None = None


class TensorRTResult(BaseModel):
    built: bool
    skipped: str | None = None
    key: str | None = None
    tensorrt_version: str | None = None
    compute_capability: str | None = None
    precision_mode: str | None = None
    fp16: bool | None = None
    build_seconds: float | None = None
    build_log: list[str] = Field(default_factory=list)
    parity: dict[str, Any] | None = None
    path: str | None = None


class ExportResult(StageResult):
    key: ClassVar[str] = "export"

    # Formats that passed their checks, in the order publish prefers them.
    formats: list[str]
    # Classification exports.
    opset: int | None = None
    input_names: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    max_length: int | None = None
    onnx: ExportVariant | None = None
    onnx_optimized: ExportVariant | None = None
    onnx_int8: ExportVariant | None = None
    tensorrt: TensorRTResult | None = None
    # Causal-LM exports: ONNX Runtime GenAI folders for CPU serving.
    genai_fp32: ExportVariant | None = None
    genai_int4: ExportVariant | None = None
    # method "distill": the student's and the teacher's served graphs timed in the same run.
    distillation: dict[str, Any] | None = None

    def variant(self, name: str) -> ExportVariant | None:
        value = getattr(self, name, None)
        return value if isinstance(value, ExportVariant) else None


class PublishResult(StageResult):
    key: ClassVar[str] = "publish"

    model: str
    repository_name: str
    version: int
    formats: list[str]
    models: list[str]
    repository: str
    promoted: bool
    loaded_on_triton: bool


STAGE_RESULTS: dict[str, type[StageResult]] = {
    "validate": ValidationResult,
    "train": TrainResult,
    "evaluate": EvaluationResult,
    "export": ExportResult,
    "publish": PublishResult,
}
