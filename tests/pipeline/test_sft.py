"""Supervised fine-tuning on a tiny random Llama built from a config, with a real byte-level BPE
tokenizer and SmolLM2's ChatML template: masking, templates, every method, cancel and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from shared.errors import InvalidSpec
from shared.pipeline.hardware import GpuRequiredError
from shared.pipeline.sft import SFTRequest, SFTResult, load_sft_tokenizer, train_causal_lm
from shared.pipeline.sft_data import (
    FALLBACK_CHAT_TEMPLATE,
    IGNORED_LABEL,
    apply_chat_template,
    conversations_dataset,
    encode_conversation,
    end_of_turn_id,
    render_prompt,
    split_conversations,
    tokenize_conversations,
)
from shared.pipeline.spec import Hyperparameters
from shared.pipeline.training_callbacks import TrainingProgress
from tests.support.llm_fixtures import alpaca_rows
from tests.support.tiny_llama import CHAT_TEMPLATE, END_OF_TURN, build_tiny_chat_llama

CHAT = [
    {"role": "system", "content": "You answer in one word."},
    {"role": "user", "content": "Colour of the sky?"},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "And of grass?"},
    {"role": "assistant", "content": "Green."},
]


@pytest.fixture(scope="module")
def base_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [f"{row['instruction']} {row['input']} {row['output']}" for row in alpaca_rows("train")[:300]]
    return build_tiny_chat_llama(tmp_path_factory.mktemp("base-llama"), texts, hidden_size=32)


@pytest.fixture(scope="module")
def conversations_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 real alpaca_en_demo rows, the short ones, as a JSONL file of Alpaca rows."""
    rows = sorted(alpaca_rows("train"), key=lambda row: len(row["output"]) + len(row["instruction"]))[:40]
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_only_the_final_answer_and_its_end_of_turn_token_carry_labels(base_llama: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(base_llama)
    encoded = encode_conversation(tokenizer, CHAT, max_length=512)
    labelled = [
        token
        for token, label in zip(encoded.input_ids, encoded.labels, strict=True)
        if label != IGNORED_LABEL
    ]
    prompt_part = encoded.input_ids[: encoded.prompt_tokens]
    assert encoded.labels[: encoded.prompt_tokens] == [IGNORED_LABEL] * encoded.prompt_tokens
    assert labelled == encoded.input_ids[encoded.prompt_tokens :]
    # The last token is the end of turn, and it is learned (not -100): that is what makes generation stop.
    assert encoded.input_ids[-1] == tokenizer.convert_tokens_to_ids(END_OF_TURN) == encoded.labels[-1]
    assert tokenizer.decode(labelled) == f"Green.{END_OF_TURN}"
    # The earlier assistant turn is context: present, never labelled.
    assert "Blue." in tokenizer.decode(prompt_part)
    # The prompt is exactly what generation will be given.
    assert tokenizer.decode(prompt_part) == render_prompt(tokenizer, CHAT[:-1])


def test_a_long_conversation_loses_the_start_of_its_prompt_not_its_answer(base_llama: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(base_llama)
    long_question = [
        {"role": "user", "content": "word " * 200},
        {"role": "assistant", "content": "Short answer."},
    ]
    full = encode_conversation(tokenizer, long_question, max_length=4096)
    cut = encode_conversation(tokenizer, long_question, max_length=64)
    assert cut.truncated and not full.truncated
    assert len(cut.input_ids) == 64
    assert cut.input_ids[-cut.answer_tokens :] == full.input_ids[-full.answer_tokens :]
    assert cut.input_ids == full.input_ids[-64:]


def test_a_model_without_a_template_gets_the_documented_fallback(base_llama: Path, tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(base_llama)
    tokenizer.chat_template = None
    assert apply_chat_template(tokenizer, None) == "fallback"
    assert tokenizer.chat_template == FALLBACK_CHAT_TEMPLATE
    assert end_of_turn_id(tokenizer) == tokenizer.eos_token_id
    assert (
        apply_chat_template(tokenizer, CHAT_TEMPLATE) == "spec" and tokenizer.chat_template == CHAT_TEMPLATE
    )


def test_a_template_that_does_not_continue_its_prompt_is_refused(base_llama: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(base_llama)
    # Renders the generation prompt differently from an answered turn: the answer cannot be found.
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'ASSISTANT>' }}{% endif %}"
    )
    with pytest.raises(InvalidSpec, match="chat template"):
        encode_conversation(tokenizer, CHAT, max_length=512)


def request_for(
    base_llama: Path, conversations_file: Path, tmp_path: Path, method: str, **hyper: object
) -> SFTRequest:
    tokenizer = load_sft_tokenizer(base_llama)
    source = apply_chat_template(tokenizer, None)
    conversations = conversations_dataset(conversations_file, "jsonl", tmp_path / "cache")
    train, validation = split_conversations(conversations, 0.2, seed=0)
    return SFTRequest(
        base_model_path=base_llama,
        tokenizer=tokenizer,
        template_source=source,
        train_dataset=tokenize_conversations(train, tokenizer, 128, tmp_path / "tok" / "train.arrow"),
        eval_dataset=tokenize_conversations(
            validation, tokenizer, 128, tmp_path / "tok" / "validation.arrow"
        ),
        method=method,
        hyperparameters=Hyperparameters(
            **{"epochs": 2, "batch_size": 8, "learning_rate": 3e-3, "max_seq_length": 128, **hyper}  # type: ignore[arg-type]
        ),
        output_dir=tmp_path / "run",
    )


class RecordingHooks:
    def __init__(self, cancel_after_step: int | None = None) -> None:
        self.progress: list[TrainingProgress] = []
        self.metrics: list[dict[str, float]] = []
        self.checkpoints: list[int] = []
        self.cancel_after_step = cancel_after_step

    def on_progress(self, progress: TrainingProgress) -> None:
        self.progress.append(progress)

    def on_metrics(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        self.metrics.append(metrics)

    def on_checkpoint(self, step: int, checkpoint_dir: Path) -> None:
        self.checkpoints.append(step)

    def should_cancel(self) -> bool:
        return (
            self.cancel_after_step is not None
            and bool(self.progress)
            and self.progress[-1].step >= self.cancel_after_step
        )


def trained(result: SFTResult) -> Path:
    assert result.status == "completed" and result.final_model_dir is not None
    return result.final_model_dir


@pytest.mark.usefixtures("one_torch_thread")
def test_full_fine_tune_learns_and_saves_the_template_it_trained_with(
    base_llama: Path, conversations_file: Path, tmp_path: Path
) -> None:
    hooks = RecordingHooks()
    request = request_for(base_llama, conversations_file, tmp_path, "full", epochs=4, logging_steps=2)
    result = train_causal_lm(request, hooks)
    model_dir = trained(result)
    eval_losses = [metrics["eval_loss"] for metrics in hooks.metrics if "eval_loss" in metrics]
    assert eval_losses[-1] < eval_losses[0]
    assert result.train_tokens_per_second > 0 and result.packing == "length_grouped"
    assert any(progress.tokens_per_second for progress in hooks.progress)
    saved = AutoTokenizer.from_pretrained(model_dir)
    assert saved.chat_template == CHAT_TEMPLATE
    config = json.loads((model_dir / "generation_config.json").read_text())
    assert config["eos_token_id"] == saved.convert_tokens_to_ids(END_OF_TURN)
    # Round trip: the saved tokenizer renders prompts exactly as training did.
    assert render_prompt(saved, CHAT[:-1]) == render_prompt(request.tokenizer, CHAT[:-1])


@pytest.mark.usefixtures("one_torch_thread")
def test_lora_keeps_an_adapter_and_a_merged_model_with_the_same_logits(
    base_llama: Path, conversations_file: Path, tmp_path: Path
) -> None:
    result = train_causal_lm(request_for(base_llama, conversations_file, tmp_path, "lora", epochs=1))
    model_dir = trained(result)
    assert result.adapter_dir is not None and (result.adapter_dir / "adapter_config.json").is_file()
    assert result.trainable_parameters < result.total_parameters / 2
    ids = torch.tensor([[5, 17, 42, 9, 3]])
    merged = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    adapted = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_llama), result.adapter_dir
    ).eval()
    with torch.inference_mode():
        assert torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-4)
    targets = json.loads((result.adapter_dir / "adapter_config.json").read_text())["target_modules"]
    assert set(targets) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


@pytest.mark.usefixtures("one_torch_thread")
def test_freeze_trains_only_the_top_block_and_the_final_norm(
    base_llama: Path, conversations_file: Path, tmp_path: Path
) -> None:
    result = train_causal_lm(
        request_for(base_llama, conversations_file, tmp_path, "freeze", epochs=1, freeze_top_layers=1)
    )
    before = AutoModelForCausalLM.from_pretrained(base_llama).state_dict()
    after = AutoModelForCausalLM.from_pretrained(trained(result)).state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(
        name.startswith(("model.layers.1.", "model.norm.", "lm_head.")) for name in changed
    )
    assert not any(name.startswith(("model.layers.0.", "model.embed_tokens.")) for name in changed)


def test_qlora_needs_a_gpu(base_llama: Path, conversations_file: Path, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this worker has a GPU; the refusal is for CPU workers")
    with pytest.raises(GpuRequiredError, match="qlora needs a CUDA GPU"):
        train_causal_lm(request_for(base_llama, conversations_file, tmp_path, "qlora", epochs=1))


@pytest.mark.usefixtures("one_torch_thread")
def test_a_cancelled_run_resumes_from_its_checkpoint_and_finishes_the_same_schedule(
    base_llama: Path, conversations_file: Path, tmp_path: Path
) -> None:
    hooks = RecordingHooks(cancel_after_step=3)
    request = request_for(
        base_llama, conversations_file, tmp_path, "lora", epochs=2, logging_steps=1, save_steps=2
    )
    cancelled = train_causal_lm(request, hooks)
    assert cancelled.status == "cancelled" and cancelled.final_model_dir is None
    checkpoint = request.output_dir / "checkpoints" / f"checkpoint-{hooks.checkpoints[-1]}"
    assert checkpoint.is_dir()

    resumed_hooks = RecordingHooks()
    request.resume_from_checkpoint = checkpoint
    resumed = train_causal_lm(request, resumed_hooks)
    assert resumed.status == "completed"
    assert resumed.global_step == resumed.total_steps == cancelled.total_steps
    # The step counter goes on from the checkpoint; it does not start over.
    assert resumed_hooks.progress[0].step > hooks.checkpoints[-1]


def test_conversations_are_an_arrow_table_on_disk(conversations_file: Path, tmp_path: Path) -> None:
    dataset = conversations_dataset(conversations_file, "jsonl", tmp_path / "cache")
    assert len(dataset) == 40 and dataset.cache_files
    assert all(Path(entry["filename"]).is_file() for entry in dataset.cache_files)
    assert dataset[0]["messages"][-1]["role"] == "assistant"
