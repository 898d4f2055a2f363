"""The hooks a training run reports through, and the Trainer callback that calls them.

The caller (the worker) implements `TrainingHooks` to write progress and metrics to the database,
upload checkpoints and read the cancel flag; the pipeline only knows this protocol.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

# Keys of the Trainer's evaluation results that describe speed or position, not model quality.
_EVAL_BOOKKEEPING_KEYS = frozenset(
    {"eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch"}
)


def eval_quality_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """eval_loss, eval_accuracy, eval_f1_macro (whatever measures the model) from a Trainer evaluation."""
    return {key: value for key, value in metrics.items() if key not in _EVAL_BOOKKEEPING_KEYS}


@dataclass(frozen=True)
class TrainingProgress:
    step: int
    total_steps: int
    epoch: float
    # Mean training loss since the previous report.
    loss: float
    learning_rate: float
    samples_per_second: float
    eta_seconds: float
    # Non-padding tokens per second, where the Trainer counts them (instruction tuning).
    tokens_per_second: float | None = None


class TrainingHooks(Protocol):
    def on_progress(self, progress: TrainingProgress) -> None: ...

    def on_metrics(self, step: int, epoch: float, metrics: dict[str, float]) -> None: ...

    def on_checkpoint(self, step: int, checkpoint_dir: Path) -> None:
        """Called once `checkpoint_dir` is completely written (weights, optimizer and trainer state)."""

    def should_cancel(self) -> bool: ...


class NullHooks:
    """Hooks that record nothing and never cancel: for running the pipeline on its own."""

    def on_progress(self, progress: TrainingProgress) -> None:
        return None

    def on_metrics(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        return None

    def on_checkpoint(self, step: int, checkpoint_dir: Path) -> None:
        return None

    def should_cancel(self) -> bool:
        return False


class HooksCallback(TrainerCallback):
    """Forwards the Trainer's logs, evaluations and checkpoints to `TrainingHooks`, and stops on cancel.

    Exceptions raised by the hooks are not caught: a worker that cannot upload a checkpoint should
    fail the run rather than train on without it.
    """

    def __init__(self, hooks: TrainingHooks) -> None:
        self._hooks = hooks
        self.cancelled = False
        self._started_at = 0.0
        self._first_step = 0
        self._first_tokens = 0

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
    ) -> None:
        # On resume global_step already holds the checkpoint's step; speed counts this run only.
        self._started_at = time.monotonic()
        self._first_step = state.global_step
        self._first_tokens = state.num_input_tokens_seen

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
    ) -> None:
        if state.global_step >= state.max_steps:
            # The Trainer logs only every logging_steps; the last step's loss and progress must land too.
            control.should_log = True
        if self._hooks.should_cancel():
            self.cancelled = True
            control.should_log = True
            control.should_save = True
            control.should_training_stop = True

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
    ) -> None:
        if self.cancelled:
            # Stopping mid-epoch still ends the epoch; the checkpoint is already saved and a cancelled
            # run has no use for an evaluation of a partial epoch.
            control.should_evaluate = False
            control.should_save = False

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: object,
    ) -> None:
        if not logs or "loss" not in logs:
            return
        epoch = state.epoch or 0.0
        train_metrics = {"train_loss": logs["loss"], "learning_rate": logs["learning_rate"]}
        if "grad_norm" in logs:
            train_metrics["grad_norm"] = logs["grad_norm"]
        self._hooks.on_metrics(state.global_step, epoch, train_metrics)
        self._hooks.on_progress(
            self._progress(args, state, loss=logs["loss"], learning_rate=logs["learning_rate"])
        )

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: object,
    ) -> None:
        self._hooks.on_metrics(state.global_step, state.epoch or 0.0, eval_quality_metrics(metrics or {}))

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
    ) -> None:
        # The Trainer is always given an output_dir (shared.pipeline.train); it saves nowhere without one.
        assert args.output_dir is not None
        checkpoint_dir = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        self._hooks.on_checkpoint(state.global_step, checkpoint_dir)

    def _progress(
        self, args: TrainingArguments, state: TrainerState, loss: float, learning_rate: float
    ) -> TrainingProgress:
        steps_this_run = state.global_step - self._first_step
        elapsed = max(time.monotonic() - self._started_at, 1e-9)
        seconds_per_step = elapsed / max(steps_this_run, 1)
        samples_per_step = args.train_batch_size * args.gradient_accumulation_steps * args.world_size
        tokens_seen = state.num_input_tokens_seen - self._first_tokens
        return TrainingProgress(
            step=state.global_step,
            total_steps=state.max_steps,
            epoch=state.epoch or 0.0,
            loss=loss,
            learning_rate=learning_rate,
            samples_per_second=samples_per_step / seconds_per_step,
            eta_seconds=max(state.max_steps - state.global_step, 0) * seconds_per_step,
            tokens_per_second=tokens_seen / elapsed if tokens_seen > 0 else None,
        )
