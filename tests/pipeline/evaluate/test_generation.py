"""Generation evaluation: answer-token perplexity, greedy answers, and the comparison with a baseline.

Fast tests use the tiny chat Llama fitted on 12 real alpaca_en_demo rows (it answers them word for
word) against the same architecture untrained; a slow test scores real SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from shared.pipeline.evaluate.gate import GateSpec
from shared.pipeline.evaluate.generation import GenerationOptions, generate_answers, score_model
from shared.pipeline.evaluate.generation_evaluation import evaluate_generation
from shared.pipeline.sft_data import encode_conversation, render_prompt
from tests.support.llm_fixtures import ChatPair, alpaca_rows, shortest_alpaca_test_rows
from tests.support.tiny_llama import END_OF_TURN, build_tiny_chat_llama


def conversation(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


@pytest.fixture(scope="module")
def untrained_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny chat Llama's architecture and tokenizer before any training: the baseline."""
    texts = [f"{row['instruction']} {row['output']}" for row in alpaca_rows("train")[:300]]
    return build_tiny_chat_llama(tmp_path_factory.mktemp("untrained-llama"), texts)


def nll_one_row_at_a_time(model, tokenizer, messages: list[dict[str, str]]) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Independent recomputation: no batching, no padding, log-softmax in float64 by hand."""
    prompt = tokenizer(render_prompt(tokenizer, messages[:-1]), add_special_tokens=False)["input_ids"]
    answer = [*tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]]
    answer.append(tokenizer.convert_tokens_to_ids(END_OF_TURN))
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prompt + answer])).logits[0]
    log_probabilities = torch.log_softmax(logits.double(), dim=-1)
    total = -sum(
        float(log_probabilities[len(prompt) + offset - 1, token]) for offset, token in enumerate(answer)
    )
    return total, len(answer)


def test_answer_losses_count_answer_tokens_only_and_match_a_plain_loop(
    tiny_chat_llama: Path, tiny_chat_pairs: list[ChatPair]
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_chat_llama).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_llama)
    conversations = [conversation(question, answer) for question, answer in tiny_chat_pairs]
    scores = score_model(model, tokenizer, conversations, [], GenerationOptions(batch_size=5, max_length=256))
    for row, messages in enumerate(conversations):
        nll, count = nll_one_row_at_a_time(model, tokenizer, messages)
        assert int(scores.tokens[row]) == count == encode_conversation(tokenizer, messages, 256).answer_tokens
        assert float(scores.nll[row]) == pytest.approx(nll, rel=1e-4, abs=1e-4)
    assert scores.perplexity == pytest.approx(math.exp(scores.nll.sum() / scores.tokens.sum()))


def test_greedy_answers_stop_at_the_end_of_turn(
    tiny_chat_llama: Path, tiny_chat_pairs: list[ChatPair]
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_chat_llama).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_llama)
    prompts = [
        tokenizer(render_prompt(tokenizer, conversation(question, "")[:1]), add_special_tokens=False)[
            "input_ids"
        ]
        for question, _ in tiny_chat_pairs[:6]
    ]
    with torch.inference_mode():
        answers = generate_answers(model, tokenizer, prompts, max_new_tokens=48, batch_size=4)
    # Batched with left padding, yet word for word what it learned, and nothing after its turn ends.
    assert answers == [answer for _, answer in tiny_chat_pairs[:6]]


@pytest.mark.usefixtures("one_torch_thread")
def test_the_fine_tuned_model_beats_its_base_with_an_interval_and_a_test(
    tiny_chat_llama: Path, untrained_llama: Path, tiny_chat_pairs: list[ChatPair]
) -> None:
    conversations = [conversation(question, answer) for question, answer in tiny_chat_pairs]
    evaluated = evaluate_generation(
        tiny_chat_llama,
        conversations,
        baseline_dir=untrained_llama,
        baseline_name="base model tiny",
        gate=GateSpec(metric="perplexity", max=2.0, better_than_baseline=True),
        options=GenerationOptions(
            max_new_tokens=48, max_generations=8, bootstrap_resamples=300, sample_count=3
        ),
        title="Evaluation of <job>",
    )
    report = evaluated.report
    perplexity = report["baseline_comparison"]["metrics"]["perplexity"]
    assert perplexity["candidate"] < 2.0 < perplexity["baseline"]
    assert perplexity["delta_interval"]["high"] < 0  # better, and not by chance
    assert report["baseline_comparison"]["significance"]["p_value"] < 0.01
    assert report["metrics"]["exact_match"] == 1.0 and report["metrics"]["rougeL"] == pytest.approx(1.0)
    assert report["generated_rows"] == 8 and len(evaluated.outputs) == 12
    assert evaluated.gate is not None and evaluated.gate.passed, evaluated.gate
    assert "generated" in evaluated.outputs[7] and "generated" not in evaluated.outputs[8]
    # Side-by-side samples, every text escaped.
    assert len(report["samples"]) == 3
    assert evaluated.html.count("<tr>") >= 3 + 8 and "&lt;job&gt;" in evaluated.html
    assert tiny_chat_pairs[0][1].split()[0] in evaluated.html


def test_a_gate_the_model_cannot_pass_says_why(
    tiny_chat_llama: Path, untrained_llama: Path, tiny_chat_pairs: list[ChatPair]
) -> None:
    evaluated = evaluate_generation(
        tiny_chat_llama,
        [conversation(question, answer) for question, answer in tiny_chat_pairs[:4]],
        baseline_dir=untrained_llama,
        baseline_name="base",
        gate=GateSpec(metric="rougeL", min=1.01),
        options=GenerationOptions(max_new_tokens=32, max_generations=4, bootstrap_resamples=200),
    )
    assert evaluated.gate is not None and not evaluated.gate.passed
    assert "rougeL" in evaluated.gate.reasons[0] and "at least 1.0100" in evaluated.gate.reasons[0]


def test_options_leave_room_for_the_answer() -> None:
    with pytest.raises(ValueError, match="below max_length"):
        GenerationOptions(max_new_tokens=64, max_length=64)


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_smollm2_finds_the_real_answers_likelier_than_mismatched_ones(smollm2_plain: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(smollm2_plain).eval()
    tokenizer = AutoTokenizer.from_pretrained(smollm2_plain)
    rows = shortest_alpaca_test_rows(8)
    matched = [conversation(row["instruction"], row["output"]) for row in rows]
    mismatched = [
        conversation(row["instruction"], rows[(index + 1) % 8]["output"]) for index, row in enumerate(rows)
    ]
    options = GenerationOptions(max_new_tokens=16, max_length=256)
    scores = score_model(model, tokenizer, matched, range(8), options)
    wrong = score_model(model, tokenizer, mismatched, [], options)
    assert 1.0 < scores.perplexity < wrong.perplexity / 2
    assert all(scores.generations)
