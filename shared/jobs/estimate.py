"""Before GPU time: how many steps a job takes, how long it will run and how much memory it needs.

Plain arithmetic over what a dry run measured (rows, tokens) and what earlier jobs of the same base
model measured (`EarlierRun`: throughput and the wall time of each stage). Each estimate carries its
basis, in words, so that a user can judge it:

- duration, measured: the train loop takes this job's training tokens divided by the tokens per
  second earlier jobs of the base model reached on the same worker class (same method preferred;
  another method is scaled by its compute per token); every other stage takes what it took those
  jobs, plus what its extra (or fewer) rows cost at a measured speed.
- duration, first principles (no earlier job): training FLOPs (forward 2·N per token, backward
  2·N more per token when only activations need gradients, 4·N when every weight does) over an
  assumed effective FLOP/s of the worker class; other stages are not estimated.
- peak memory, first principles: weights, gradients and AdamW's two moments of the trainable
  parameters, activations per layer for the batch at its longest row (Korthikanti et al. 2022,
  "Reducing Activation Recomputation in Large Transformer Models"), logits of a causal LM, and the
  runtime itself.
"""

from __future__ import annotations

import math
import statistics
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from shared.base_models.files import Architecture, ParameterCount
from shared.pipeline.spec import Hyperparameters

WorkerClass = Literal["cpu", "gpu"]
GIB = 1024**3

# Compute per token, in units of a forward pass (2·N FLOPs): backward through activations only
# (lora, qlora) costs one more unit, backward with weight gradients (full) two more; distillation
# adds the teacher's forward pass. `freeze` is worked out from how many layers train.
METHOD_UNITS: dict[str, float] = {"full": 3.0, "lora": 2.0, "qlora": 2.0, "distill": 4.0}
# How many earlier runs one estimate is based on, newest first.
MAX_REFERENCE_RUNS = 5
# Bytes per activation value: fp32 on a CPU, bf16/fp16 autocast on a GPU.
ACTIVATION_BYTES: dict[WorkerClass, int] = {"cpu": 4, "gpu": 2}
# What the process holds before the model: Python, torch, transformers and the data on a CPU
# worker; the CUDA context and cuBLAS workspaces on a GPU.
RUNTIME_BYTES: dict[WorkerClass, int] = {"cpu": 1 * GIB, "gpu": GIB // 2}
# Activation units per token of a transformer block (`block_units`).
GPT_BLOCK_UNITS = 34.0
GATED_BLOCK_UNITS = 42.5
# Default LoRA targets are two attention projections per layer (query and value).
DEFAULT_LORA_MODULES_PER_LAYER = 2


@dataclass(frozen=True)
class TrainingPlan:
    """What the Trainer will do with this spec: steps and tokens."""

    train_rows: int
    batch_size: int
    gradient_accumulation_steps: int
    epochs: float
    steps_per_epoch: int
    total_steps: int
    # Tokens the model reads per row, cut at max_seq_length (no padding), on average.
    mean_tokens_per_row: float
    tokens_per_epoch: int
    total_tokens: int


def plan_training(
    train_rows: int, mean_tokens_per_row: float, hyperparameters: Hyperparameters
) -> TrainingPlan:
    """Steps as `transformers.Trainer` counts them: batches per epoch, optimizer steps per epoch
    (a last partial accumulation counts), epochs rounded up to a whole step."""
    batches = math.ceil(train_rows / hyperparameters.per_device_batch())
    accumulation = hyperparameters.gradient_accumulation_steps
    steps_per_epoch = max(math.ceil(batches / accumulation), 1)
    tokens_per_epoch = round(train_rows * mean_tokens_per_row)
    return TrainingPlan(
        train_rows=train_rows,
        batch_size=hyperparameters.per_device_batch(),
        gradient_accumulation_steps=accumulation,
        epochs=hyperparameters.epochs,
        steps_per_epoch=steps_per_epoch,
        total_steps=math.ceil(hyperparameters.epochs * steps_per_epoch),
        mean_tokens_per_row=round(mean_tokens_per_row, 2),
        tokens_per_epoch=tokens_per_epoch,
        total_tokens=round(tokens_per_epoch * hyperparameters.epochs),
    )


def method_units(method: str, hyperparameters: Hyperparameters, layers: int) -> float:
    if method == "freeze":
        # A forward through every layer, backward (with weight gradients) through the top ones only.
        trained = min(hyperparameters.freeze_top_layers, layers) / layers if layers else 1.0
        return 1.0 + 2.0 * trained
    return METHOD_UNITS.get(method, METHOD_UNITS["full"])


# Duration ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EarlierRun:
    """What one finished job of the same base model measured."""

    job_id: uuid.UUID
    team_id: uuid.UUID
    method: str
    worker_class: WorkerClass
    finished_at: datetime | None
    train_runtime_s: float
    train_samples_per_second: float
    train_tokens_per_second: float | None
    units: float
    # The train loop split in two, from its progress reports: tokens per second once running, and
    # the seconds it spent besides (the first steps build kernels and allocate; the final
    # evaluation). None and 0 where the run reported too little progress to tell.
    steady_tokens_per_second: float | None
    startup_s: float
    # Rows the validate stage counted (train + validation + test) and the rows evaluated.
    rows_validated: int | None
    rows_evaluated: int | None
    # Wall seconds of each stage, from the transitions into and out of it (queue waits included).
    stage_seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class JobShape:
    """What of the new job the stage durations scale with."""

    plan: TrainingPlan
    method: str
    units: float
    stages: list[str]
    rows_validated: int
    rows_evaluated: int
    mean_tokens_per_row_evaluated: float
    # Tokenizing speed measured by the dry run: what each extra row adds to the validate stage.
    seconds_per_row_validated: float


@dataclass
class DurationEstimate:
    basis: Literal["measured", "first_principles"]
    train_seconds: float
    # Every stage of the job; None where nothing says how long it takes.
    stages: dict[str, float | None]
    explanation: list[str]
    reference_jobs: list[uuid.UUID] = field(default_factory=list)
    # Reference jobs of other teams: counted in the median, not named.
    other_team_jobs: int = 0
    tokens_per_second: float | None = None
    samples_per_second: float | None = None

    @property
    def seconds(self) -> float:
        return sum(value for value in self.stages.values() if value is not None)


def estimate_duration(
    job: JobShape,
    worker_class: WorkerClass,
    earlier: Sequence[EarlierRun],
    *,
    compute_parameters: int,
    effective_flops: float,
) -> DurationEstimate:
    """From earlier runs of the base model on this worker class when there are any, else from FLOPs."""
    same_class = [run for run in earlier if run.worker_class == worker_class]
    same_method = [run for run in same_class if run.method == job.method]
    references = (same_method or same_class)[:MAX_REFERENCE_RUNS]
    if not references:
        return _first_principles(job, worker_class, compute_parameters, effective_flops)
    return _measured(job, worker_class, references, exact_method=bool(same_method))


def _measured(
    job: JobShape, worker_class: WorkerClass, references: list[EarlierRun], exact_method: bool
) -> DurationEstimate:
    plan = job.plan
    explanation: list[str] = []
    # Throughput pooled over the references (weighted by their train seconds: a longer run, better
    # measured, weighs more), each as it would be under this job's method; the steady rate where
    # progress reports show it, the average over the whole loop where they do not.
    runtime = sum(run.train_runtime_s for run in references)
    rated = [
        (rate * run.units / job.units, run.train_runtime_s)
        for run in references
        if (rate := run.steady_tokens_per_second or run.train_tokens_per_second)
    ]
    tokens_per_second = (
        sum(rate * weight for rate, weight in rated) / sum(w for _, w in rated) if rated else None
    )
    samples_per_second = (
        sum(run.train_samples_per_second * run.train_runtime_s * run.units for run in references)
        / runtime
        / job.units
    )
    startup = statistics.median(run.startup_s for run in references)
    methods = sorted({run.method for run in references})
    which = (
        f"{len(references)} earlier job(s) of this base model with method {job.method} on a {worker_class} worker"
        if exact_method
        else f"{len(references)} earlier job(s) of this base model on a {worker_class} worker "
        f"(method {', '.join(methods)}, scaled to {job.method} by compute per token)"
    )
    if tokens_per_second:
        train_seconds = startup + plan.total_tokens / tokens_per_second
        explanation.append(
            f"train loop: {plan.total_tokens:,} tokens ({plan.epochs:g} epoch(s) of {plan.tokens_per_epoch:,}) "
            f"at {tokens_per_second:,.0f} tokens/s plus {startup:.1f} s of start-up (first steps) and final "
            f"evaluation, measured between the progress reports of {which}"
        )
    else:
        train_seconds = plan.train_rows * plan.epochs / samples_per_second
        explanation.append(
            f"train loop: {plan.train_rows:,} rows x {plan.epochs:g} epoch(s) at {samples_per_second:,.1f} "
            f"samples/s, measured on {which} (they recorded no token counts)"
        )
    # A forward pass (evaluation) is one of the method's compute units per token.
    forward_tokens_per_second = (
        tokens_per_second or samples_per_second * plan.mean_tokens_per_row
    ) * job.units
    stages: dict[str, float | None] = {}
    for stage in job.stages:
        measured = [
            value
            for run in references
            if (value := _stage_seconds(stage, run, job, train_seconds, forward_tokens_per_second))
            is not None
        ]
        stages[stage] = statistics.median(measured) if measured else None
        if not measured:
            explanation.append(f"{stage}: no earlier job ran it; not estimated")
    explanation.append(
        "other stages take what they took the earlier jobs (the median, waits for a worker included), "
        f"plus or minus their rows' difference: validate at {job.seconds_per_row_validated * 1000:.2f} ms a row "
        f"(this dry run's tokenizing speed), evaluate at {forward_tokens_per_second:,.0f} tokens/s "
        "(a forward pass at the training throughput); the train stage adds their loading and saving to the loop"
    )
    return DurationEstimate(
        basis="measured",
        train_seconds=round(train_seconds, 1),
        stages={stage: round(value, 1) if value is not None else None for stage, value in stages.items()},
        explanation=explanation,
        reference_jobs=[run.job_id for run in references],
        tokens_per_second=round(tokens_per_second, 1) if tokens_per_second else None,
        samples_per_second=round(samples_per_second, 2),
    )


def _stage_seconds(
    stage: str, run: EarlierRun, job: JobShape, train_seconds: float, forward_tokens_per_second: float
) -> float | None:
    """What `stage` of this job should take, from what it took `run`."""
    measured = run.stage_seconds.get(stage)
    if measured is None:
        return None
    if stage == "train":
        return max(measured - run.train_runtime_s, 0.0) + train_seconds
    if stage == "validate" and run.rows_validated is not None:
        extra = (job.rows_validated - run.rows_validated) * job.seconds_per_row_validated
        return max(measured + extra, 0.0)
    if stage == "evaluate" and run.rows_evaluated is not None:
        extra_tokens = (job.rows_evaluated - run.rows_evaluated) * job.mean_tokens_per_row_evaluated
        return max(measured + extra_tokens / forward_tokens_per_second, 0.0)
    return measured


def _first_principles(
    job: JobShape, worker_class: WorkerClass, compute_parameters: int, effective_flops: float
) -> DurationEstimate:
    plan = job.plan
    flops = 2.0 * compute_parameters * plan.total_tokens * job.units
    train_seconds = flops / effective_flops
    explanation = [
        f"train loop: 2 x {compute_parameters:,} parameters (without embedding tables) x {plan.total_tokens:,} "
        f"tokens x {job.units:g} (forward + backward for method {job.method}) = {flops:.3g} FLOPs, at an "
        f"assumed {effective_flops:.3g} FLOP/s of a {worker_class} worker (no earlier job of this base model "
        f"ran on one)",
        "validate, evaluate, export and publish are not estimated without an earlier job to measure them by",
    ]
    stages: dict[str, float | None] = {stage: None for stage in job.stages}
    stages["train"] = round(train_seconds, 1)
    return DurationEstimate(
        basis="first_principles",
        train_seconds=round(train_seconds, 1),
        stages=stages,
        explanation=explanation,
    )


# Memory -----------------------------------------------------------------------------------------


@dataclass
class MemoryEstimate:
    worker_class: WorkerClass
    components: dict[str, int]
    explanation: list[str]

    @property
    def peak_bytes(self) -> int:
        return sum(self.components.values())


def estimate_memory(
    *,
    architecture: Architecture,
    parameters: ParameterCount,
    method: str,
    hyperparameters: Hyperparameters,
    longest_row_tokens: int,
    worker_class: WorkerClass,
    causal_lm: bool,
) -> MemoryEstimate:
    """Peak memory of the train stage on one worker of `worker_class` (device memory on a GPU).

    The batch must be a number: an "auto" batch is resolved first (`shared.jobs.memory_fit`)."""
    total = parameters.total
    trainable = trainable_parameters(architecture, parameters, method, hyperparameters)
    batch, length = hyperparameters.per_device_batch(), max(1, longest_row_tokens)
    hidden, layers, heads = (
        architecture.hidden_size,
        architecture.layers,
        max(architecture.attention_heads, 1),
    )
    act_bytes = ACTIVATION_BYTES[worker_class]
    weight_bytes = 0.5 if method == "qlora" else 4.0

    # Per layer, 16-bit activations: s·b·h·(units + 5·a·s/h) bytes (Korthikanti et al.); scaled to
    # the activation width used here.
    units = block_units(architecture)
    per_layer = length * batch * hidden * (units + 5 * heads * length / max(hidden, 1)) * act_bytes / 2
    if hyperparameters.gradient_checkpointing:
        # Only each layer's input is kept; one layer's activations are rebuilt at a time.
        activations = layers * length * batch * hidden * act_bytes + per_layer
        activation_note = "gradient checkpointing: each layer's input kept, one layer rebuilt at a time"
    else:
        activation_note = "every layer's activations kept for the backward pass"
        kept_layers = layers
        if method == "freeze":
            kept_layers = min(hyperparameters.freeze_top_layers, layers)
            activation_note = f"only the top {kept_layers} trained layers keep theirs"
        activations = kept_layers * per_layer
    components = {
        "weights": int(total * weight_bytes),
        "gradients": int(trainable * 4),
        "optimizer": int(trainable * 8),
        "activations": int(activations),
        "runtime": RUNTIME_BYTES[worker_class],
    }
    explanation = [
        f"weights: {total:,} parameters x {weight_bytes:g} bytes"
        + (" (4-bit base)" if method == "qlora" else " (fp32 master weights)"),
        f"gradients and AdamW moments: {trainable:,} trainable parameters x (4 + 8) bytes",
        f"activations: {layers} layers x batch {batch} x {length} tokens (the longest row) x hidden {hidden}, "
        f"{act_bytes}-byte values, {units:.1f} + 5·heads·tokens/hidden per value"
        + (" (gated MLP)" if architecture.gated_mlp else "")
        + f"; {activation_note}",
        f"runtime: {RUNTIME_BYTES[worker_class] / GIB:g} GiB "
        + ("(Python, torch, transformers and the rows)" if worker_class == "cpu" else "(CUDA context)"),
    ]
    if method in ("lora", "qlora"):
        # After the last step the adapter is merged into a fresh full-precision copy of the base,
        # loaded while the trained model is still held.
        components["merge"] = total * 4
        explanation.append(
            f"merge: a float32 copy of the {total:,} base parameters to merge the adapter into"
        )
    if causal_lm:
        # The LM head's output for every position, its float32 copy in the loss, and its gradient.
        logit_bytes = 12 if worker_class == "cpu" else 10
        components["logits"] = batch * length * architecture.vocab_size * logit_bytes
        explanation.append(
            f"logits: batch {batch} x {length} tokens x vocabulary {architecture.vocab_size:,} x {logit_bytes} "
            "bytes (values, float32 copy in the loss, gradient)"
        )
    return MemoryEstimate(worker_class=worker_class, components=components, explanation=explanation)


def block_units(architecture: Architecture) -> float:
    """Activation bytes one transformer block keeps per token, in units of the hidden size at 16 bits
    (the attention scores' 5·a·s/h comes on top).

    GPT/BERT blocks: 34 (Korthikanti et al.: attention 11, a 4h MLP 19, two layer norms 4). Gated-MLP
    decoders (Llama and kin) keep four intermediate-wide tensors in the MLP (gate, up, the activation
    and their product: 8·i/h) and more around it: RoPE's rotated copies of q and k and RMSNorm's
    float32 intermediates. The 42.5 for everything but the MLP's intermediate tensors is measured, not
    derived: SmolLM2-135M LoRA through TRL's SFT on a CPU, 384-token rows at batch 2, 4 and 8, kept
    1.37 GiB per row (the process's high-water mark), where 34 gave 0.99.
    """
    if architecture.gated_mlp:
        return GATED_BLOCK_UNITS + 8 * architecture.intermediate_size / max(architecture.hidden_size, 1)
    return GPT_BLOCK_UNITS


def trainable_parameters(
    architecture: Architecture, parameters: ParameterCount, method: str, hyperparameters: Hyperparameters
) -> int:
    """How many parameters get gradients under `method` (heads, a few thousand, are left out)."""
    layers = max(architecture.layers, 1)
    if method in ("lora", "qlora"):
        lora = hyperparameters.lora
        modules = len(lora.target_modules) if lora.target_modules else DEFAULT_LORA_MODULES_PER_LAYER
        # A and B of each adapted projection: r x (in + out), in and out taken as the hidden size.
        return lora.r * 2 * architecture.hidden_size * modules * layers
    if method == "freeze":
        per_layer = (parameters.total - parameters.embedding) / layers
        return int(per_layer * min(hyperparameters.freeze_top_layers, layers))
    return parameters.total
