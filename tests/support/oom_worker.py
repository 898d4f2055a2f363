"""A Celery worker app for the out-of-memory test: the real worker (`services.worker.app`), whose
causal-LM train stage, for base models named with `BALLOON_PREFIX`, first fits the job to the worker
like the real one and then allocates memory until the kernel kills the process.

It stands in for what cannot be made on purpose with a real model on a test machine: a training run
that needs more memory than its estimate said (SmolLM2 LoRA was estimated 18.8 GB and grew to 20 GB).
Every other job runs the real stage body.
"""

from __future__ import annotations

import time

from services.worker.app import app, celery_app  # noqa: F401  (what `celery -A` looks for)
from shared.jobs.run import JobRun
from shared.jobs.stages import bodies
from shared.jobs.stages.causal_lm.train import run_train
from shared.jobs.stages.data import base_model_dir
from shared.jobs.stages.memory import fit_to_worker
from shared.jobs.stages.runner import StageOutcome

BALLOON_PREFIX = "balloon-"
CHUNK_BYTES = 16 * 1024 * 1024
# Slow enough that the heartbeat thread's samples (every second) see the growth.
CHUNK_PAUSE_S = 0.05


def train_or_balloon(run: JobRun) -> StageOutcome:
    if not run.inputs.base_model.name.startswith(BALLOON_PREFIX):
        return run_train(run)
    fit_to_worker(run, base_model_dir(run))
    held = []
    while True:  # until the kernel's OOM killer ends the process
        chunk = bytearray(CHUNK_BYTES)
        chunk[::4096] = b"\1" * len(range(0, CHUNK_BYTES, 4096))  # touch every page
        held.append(chunk)
        time.sleep(CHUNK_PAUSE_S)


bodies._BODIES["causal-lm"]["train"] = f"{__name__}:train_or_balloon"
