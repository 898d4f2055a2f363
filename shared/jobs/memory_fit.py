"""Does a job fit the memory of the worker that will train it, and which batch makes it fit?

Submit asks it of the largest fresh train worker (`check_fits_a_worker`, a 422 naming the estimate,
the worker's memory and the fields to change); the train stage asks it again of the worker it runs
on (`shared.jobs.stages.memory`) and resolves a batch of "auto". Both use `estimate_memory` with the
row length bound at max_seq_length (nothing is tokenized at submit) and a safety margin on top: the
estimate is arithmetic, and a process grows past it (allocator slack, copies the formula leaves out;
SmolLM2 LoRA at batch 16 was estimated 18.8 GB and grew to 20 GB).

Only what is cheap happens here: the base model's architecture and parameter count are kept on its
catalog row at registration (read from its config and safetensors headers; a local source registered
before that is read once per process), and the workers' rows are read once every few seconds.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from shared.base_models.files import Architecture, ParameterCount, base_model_files, shape_from_record
from shared.db.models import BaseModelEntry
from shared.errors import InvalidInput
from shared.jobs.estimate import GIB, MemoryEstimate, WorkerClass, estimate_memory
from shared.jobs.spec import JobSpec
from shared.pipeline.spec import Hyperparameters
from shared.settings import Settings, get_settings
from shared.workers.capacity import WorkerCapacity, fresh_workers

# What a user can change to make a job smaller, named in every refusal.
MEMORY_FIELDS = [
    "hyperparameters.batch_size",
    "hyperparameters.max_seq_length",
    "hyperparameters.gradient_checkpointing",
    "method",
]
TRAIN_QUEUE = "train"


@dataclass(frozen=True)
class MemoryPolicy:
    margin: float
    stale_after: timedelta
    cache_for: timedelta

    @classmethod
    def of(cls, settings: Settings) -> MemoryPolicy:
        return cls(
            margin=settings.memory_safety_margin,
            stale_after=settings.worker_stale_after,
            cache_for=settings.worker_capacity_cache,
        )

    def needed_bytes(self, estimate: MemoryEstimate) -> int:
        return math.ceil(estimate.peak_bytes * (1.0 + self.margin))


@dataclass(frozen=True)
class ModelShape:
    architecture: Architecture
    parameters: ParameterCount


@dataclass(frozen=True)
class BatchChoice:
    """What "auto" resolved to: the per-device batch, the accumulation up to the global batch, and
    the estimate of the chosen batch."""

    per_device: int
    accumulation: int
    estimate: MemoryEstimate
    needed_bytes: int
    available_bytes: int

    def as_dict(self) -> dict[str, int]:
        return {
            "per_device_batch_size": self.per_device,
            "gradient_accumulation_steps": self.accumulation,
            "global_batch_size": self.per_device * self.accumulation,
            "estimated_peak_bytes": self.estimate.peak_bytes,
            "needed_bytes": self.needed_bytes,
            "available_bytes": self.available_bytes,
        }


def model_shape(source: str) -> ModelShape | None:
    """The architecture and parameter count of a `local:` or `package:` base model, read once per
    process; None for a model in the object store (the train stage reads it once downloaded)."""
    if not source.startswith(("local:", "package:")):
        return None
    return _local_shape(source)


def catalog_shape(base_model: BaseModelEntry) -> ModelShape | None:
    """The shape kept on the catalog row at registration (every source, the object store's too), or
    read from a local source's files for a row registered before the shape was kept."""
    kept = shape_from_record(base_model.shape)
    if kept is not None:
        return ModelShape(*kept)
    return model_shape(base_model.source)


@functools.lru_cache(maxsize=256)
def _local_shape(source: str) -> ModelShape | None:
    try:
        files = base_model_files(source)
    except (InvalidInput, OSError, ValueError):
        return None
    return ModelShape(files.architecture, files.parameters)


def estimate_for(
    shape: ModelShape, spec: JobSpec, hyperparameters: Hyperparameters, worker_class: WorkerClass
) -> MemoryEstimate:
    """The train stage's peak at `hyperparameters`' (numeric) batch, every row as long as allowed."""
    return estimate_memory(
        architecture=shape.architecture,
        parameters=shape.parameters,
        method=spec.method,
        hyperparameters=hyperparameters,
        longest_row_tokens=hyperparameters.max_seq_length,
        worker_class=worker_class,
        causal_lm=spec.task == "causal-lm",
    )


def batch_candidates(global_batch: int) -> list[int]:
    """Per-device batches "auto" tries, largest first: powers of two that divide the global batch
    (so that per-device x accumulation is exactly the global batch); 1 always."""
    candidates, size = [], 1
    while size <= global_batch:
        if global_batch % size == 0:
            candidates.append(size)
        size *= 2
    return sorted(candidates, reverse=True)


def choose_batch(
    shape: ModelShape,
    spec: JobSpec,
    worker_class: WorkerClass,
    available_bytes: int,
    policy: MemoryPolicy,
) -> BatchChoice | None:
    """The largest per-device batch whose estimate, with the margin, fits `available_bytes`; None
    when not even a batch of one does."""
    hyperparameters = spec.hyperparameters
    global_batch = hyperparameters.global_batch_size or hyperparameters.per_device_batch()
    for per_device in batch_candidates(global_batch):
        resolved = hyperparameters.with_batch(per_device, global_batch // per_device)
        estimate = estimate_for(shape, spec, resolved, worker_class)
        needed = policy.needed_bytes(estimate)
        if needed <= available_bytes:
            return BatchChoice(per_device, global_batch // per_device, estimate, needed, available_bytes)
    return None


def smallest_resolved(spec: JobSpec) -> Hyperparameters:
    """The hyperparameters at the smallest batch the spec allows: batch 1 for "auto", else its own."""
    hyperparameters = spec.hyperparameters
    if hyperparameters.auto_batch:
        return hyperparameters.with_batch(1, hyperparameters.global_batch_size or 1)
    return hyperparameters


def worker_class_of(worker: WorkerCapacity) -> WorkerClass:
    return "gpu" if worker.devices else "cpu"


def check_fits_a_worker(session: Session, spec: JobSpec, base_model: BaseModelEntry) -> None:
    """Refuse (422) a job whose estimate, with the margin, fits no fresh train worker.

    Nothing is refused while no train worker has advertised itself (an embedded deployment before its
    worker starts, unit tests) or when the base model's shape is not at hand here: the train stage
    checks again on the worker itself. A batch of "auto" is checked at batch 1.
    """
    policy = MemoryPolicy.of(get_settings())
    workers = [
        worker
        for worker in fresh_workers(session, policy.stale_after, policy.cache_for)
        if TRAIN_QUEUE in worker.queues and (worker.devices or spec.method != "qlora")
    ]
    shape = catalog_shape(base_model) if workers else None
    if shape is None:
        return
    hyperparameters = smallest_resolved(spec)
    best: tuple[int, WorkerCapacity, MemoryEstimate] | None = None
    for worker in workers:
        estimate = estimate_for(shape, spec, hyperparameters, worker_class_of(worker))
        if policy.needed_bytes(estimate) <= worker.capacity_bytes:
            return
        if best is None or worker.capacity_bytes > best[0]:
            best = (worker.capacity_bytes, worker, estimate)
    assert best is not None
    capacity, worker, estimate = best
    raise memory_refusal(
        spec, hyperparameters, estimate, policy, worker.name, capacity, worker_class_of(worker)
    )


def memory_refusal(
    spec: JobSpec,
    hyperparameters: Hyperparameters,
    estimate: MemoryEstimate,
    policy: MemoryPolicy,
    worker_name: str,
    capacity_bytes: int,
    worker_class: WorkerClass,
) -> InvalidInput:
    needed = policy.needed_bytes(estimate)
    what = "device memory" if worker_class == "gpu" else "memory"
    changes = [
        "lower hyperparameters.batch_size"
        + ("" if spec.hyperparameters.auto_batch else " (or set it to 'auto')"),
        "lower hyperparameters.max_seq_length",
    ]
    if not hyperparameters.gradient_checkpointing:
        changes.append("turn on hyperparameters.gradient_checkpointing")
    if spec.method not in ("lora", "qlora"):
        changes.append("use method 'lora'")
    message = (
        f"the train stage is estimated to need {estimate.peak_bytes / GIB:.1f} GiB at batch "
        f"{hyperparameters.per_device_batch()} x {hyperparameters.max_seq_length} tokens "
        f"({needed / GIB:.1f} GiB with the {policy.margin:.0%} safety margin), and the largest train "
        f"worker, {worker_name}, has {capacity_bytes / GIB:.1f} GiB of {what}: " + ", or ".join(changes)
    )
    return InvalidInput(
        message,
        details={
            "field": "hyperparameters.batch_size",
            "fields": MEMORY_FIELDS,
            "estimated_peak_bytes": estimate.peak_bytes,
            "needed_bytes": needed,
            "worker": worker_name,
            "worker_memory_bytes": capacity_bytes,
            "components": estimate.components,
        },
        code="does_not_fit",
    )
