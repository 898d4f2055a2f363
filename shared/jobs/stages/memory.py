"""Before the train stage loads anything: does the job fit the memory of this worker, and which batch
makes it fit when the spec asks for "auto"?

Checked here again, whatever submit said: submit judged the largest registered worker, and this is
the worker the stage actually got, with what it has free now. A job that cannot fit fails at once
with `out_of_memory` and the estimate, instead of being killed by the kernel minutes later (and
handed back to kill the next worker).
"""

from __future__ import annotations

from pathlib import Path

from shared.base_models.files import shape_record
from shared.errors import StageError
from shared.jobs.estimate import GIB, WorkerClass
from shared.jobs.memory_fit import (
    MEMORY_FIELDS,
    MemoryPolicy,
    choose_batch,
    estimate_for,
    model_shape,
)
from shared.jobs.memory_watch import OUT_OF_MEMORY
from shared.jobs.results import AutoBatch
from shared.jobs.run import JobRun
from shared.pipeline.spec import Hyperparameters
from shared.workers.host import host_memory, process_rss_bytes


def worker_memory() -> tuple[WorkerClass, int]:
    """Where training runs here and the memory it can have: the first CUDA device's total on a GPU;
    on a CPU, what is free now (cgroup-limited) plus what this process already holds (its runtime
    is part of the estimate)."""
    import torch

    if torch.cuda.is_available():
        return "gpu", int(torch.cuda.get_device_properties(0).total_memory)
    figures = host_memory()
    rss = process_rss_bytes()
    held = rss[0] if rss else 0
    return "cpu", min(figures.total_bytes, figures.available_bytes + held)


def fit_to_worker(run: JobRun, model_dir: Path) -> tuple[Hyperparameters, AutoBatch | None]:
    """The hyperparameters to train with (an "auto" batch resolved and recorded on the job), or a
    `StageError` (`out_of_memory`) when not even the smallest allowed batch fits."""
    spec = run.spec
    policy = MemoryPolicy.of(run.ctx.settings)
    shape = model_shape(f"local:{model_dir}")
    if shape is None:
        raise StageError(
            f"the base model at {model_dir} has no readable config.json", code="invalid_base_model"
        )
    if not run.inputs.base_model.has_shape:
        run.keep_base_model_shape(shape_record(shape.architecture, shape.parameters))
    worker_class, available = worker_memory()
    hyperparameters = spec.hyperparameters
    if hyperparameters.auto_batch:
        choice = choose_batch(shape, spec, worker_class, available, policy)
        if choice is None:
            smallest = estimate_for(shape, spec, hyperparameters.with_batch(1, 1), worker_class)
            raise _predicted(smallest.peak_bytes, policy.needed_bytes(smallest), available, "batch 1")
        resolved = hyperparameters.with_batch(choice.per_device, choice.accumulation)
        chosen = AutoBatch.model_validate({**choice.as_dict(), "worker_class": worker_class})
        run.resolve_spec(
            spec.model_copy(update={"hyperparameters": resolved}),
            f"batch size 'auto': {choice.per_device} per device x {choice.accumulation} accumulation steps = "
            f"{choice.per_device * choice.accumulation} (estimated {choice.estimate.peak_bytes / GIB:.2f} GiB of "
            f"{available / GIB:.2f} GiB available)",
            {"auto_batch": chosen.model_dump()},
        )
        run.note_memory({"estimate_bytes": choice.estimate.peak_bytes})
        return resolved, chosen
    estimate = estimate_for(shape, spec, hyperparameters, worker_class)
    needed = policy.needed_bytes(estimate)
    run.note_memory({"estimate_bytes": estimate.peak_bytes})
    if needed > available:
        raise _predicted(
            estimate.peak_bytes, needed, available, f"batch {hyperparameters.per_device_batch()}"
        )
    return hyperparameters, None


def _predicted(estimate_bytes: int, needed_bytes: int, available_bytes: int, at: str) -> StageError:
    return StageError(
        f"predicted out of memory: at {at} the train stage is estimated to need {estimate_bytes / GIB:.2f} GiB "
        f"({needed_bytes / GIB:.2f} GiB with the safety margin) and this worker has {available_bytes / GIB:.2f} GiB; "
        f"nothing was trained. Change {', '.join(MEMORY_FIELDS)}",
        code=OUT_OF_MEMORY,
    )
