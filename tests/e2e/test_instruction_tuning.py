"""A causal-LM job over REST with a real worker: a tiny chat Llama (random weights, real BPE tokenizer
and ChatML template) fine-tuned on 12 real alpaca_en_demo rows, evaluated against its base,
exported to ONNX Runtime GenAI, published, and asked through `generate`; and a worker killed
mid-training whose job resumes with the step counter going on."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.support.llm_fixtures import ChatPair, alpaca_rows
from tests.support.stack import Stack, running_stack
from tests.support.tiny_llama import build_tiny_chat_llama


@pytest.fixture(scope="module")
def untrained_chat_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [f"{row['instruction']} {row['output']}" for row in alpaca_rows("train")[:300]]
    return build_tiny_chat_llama(tmp_path_factory.mktemp("base-llama"), texts)


def upload_instructions(stack: Stack, key: str, path: Path, pairs: list[ChatPair], chat: bool) -> str:
    """The pairs as Alpaca rows, or as chat rows with `messages`."""
    lines = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        if chat
        else {"instruction": q, "input": "", "output": a}
        for q, a in pairs
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    response = stack.upload(key, path, name=path.stem, task="instruction")
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_instruction_tuning_end_to_end(
    embedded_settings: Settings, untrained_chat_llama: Path, tiny_chat_pairs: list[ChatPair], tmp_path: Path
) -> None:
    with running_stack(embedded_settings) as stack:
        stack.register_base_model("tiny-llama", f"local:{untrained_chat_llama}", task_family="causal-lm")
        _, key = stack.new_team()
        headers = stack.headers(key)
        train_id = upload_instructions(stack, key, tmp_path / "train.jsonl", tiny_chat_pairs, chat=False)
        test_id = upload_instructions(stack, key, tmp_path / "test.jsonl", tiny_chat_pairs[:8], chat=True)
        dataset = stack.client.get(f"/v1/datasets/{train_id}", headers=headers).json()
        assert dataset["task"] == "instruction" and dataset["report"]["roles"] == {
            "assistant": 12,
            "user": 12,
        }

        spec = {
            "task": "causal-lm",
            "base_model": "tiny-llama",
            "method": "full",
            "train_dataset_id": train_id,
            # The tiny model learns its 12 rows by heart: every test row is a training row, so that
            # the fine-tuned model has something to be better at.
            "validation_dataset_id": test_id,
            "test_dataset_id": test_id,
            "hyperparameters": {"epochs": 40, "batch_size": 4, "learning_rate": 1e-2, "max_seq_length": 96},
            "evaluation": {"max_generations": 8, "max_new_tokens": 40, "bootstrap_resamples": 300},
            "export": {"genai": ["fp32"], "check_prompts": 4},
            "publish": {"model": "tiny-assistant", "promote": True},
        }
        submitted = stack.client.post("/v1/jobs", json=spec, headers=headers)
        assert submitted.status_code == 201, submitted.text
        assert submitted.json()["spec"]["evaluation"]["baseline"] == "base"
        job = stack.wait_for(key, submitted.json()["id"], timeout_s=600)
        assert job["status"] == "succeeded", job
        assert job["completed_stages"] == ["validate", "train", "evaluate", "export", "publish"]

        validation = job["result"]["validation"]
        assert validation["instructions"]["chat_template"] == "model"
        assert 0 < validation["instructions"]["answer_token_share"] < 1
        # The byte-level BPE makes no unknown tokens; the fit is measured on the rendered template.
        fit = validation["tokenizer_fit"]
        assert fit["unknown_tokens"] == 0 and fit["rows"] == fit["rows_total"] == 12
        assert fit["max_length"] == 96 and fit["scripts"][0]["script"] == "Latin"
        train = job["result"]["train"]
        assert train["train_tokens_per_second"] > 0 and train["packing"] == "length_grouped"
        assert train["device"] == "cpu"
        assert job["progress"]["tokens_per_second"] > 0

        evaluation = job["result"]["evaluation"]
        perplexity = evaluation["deltas"]["perplexity"]
        assert evaluation["metrics"]["perplexity"] < evaluation["baseline"]["metrics"]["perplexity"]
        assert perplexity["interval"]["high"] < 0  # lower than the base model's, beyond chance
        page = stack.client.get(f"/v1/jobs/{job['id']}/evaluation.html", headers=headers)
        assert page.status_code == 200 and "Samples" in page.text

        export = job["result"]["export"]
        assert export["formats"] == ["genai_fp32"]
        assert export["genai_fp32"]["parity"]["greedy"]["agreement"] == 1.0

        answer = stack.client.post(
            "/v1/models/tiny-assistant/generate",
            json={"prompt": tiny_chat_pairs[0][0], "max_new_tokens": 40},
            headers=headers,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["finish_reason"] == "eos"
        assert answer.json()["text"] == tiny_chat_pairs[0][1]

        streamed = stack.client.post(
            "/v1/models/tiny-assistant/generate",
            json={"messages": [{"role": "user", "content": tiny_chat_pairs[1][0]}], "stream": True},
            headers=headers,
        )
        events = sse_events(streamed.text)
        assert [name for name, _ in events[:-1]] == ["token"] * (len(events) - 1) and len(events) > 2
        assert events[-1][0] == "end" and events[-1][1]["finish_reason"] == "eos"
        assert "".join(data["text"] for _, data in events[:-1]) == tiny_chat_pairs[1][1]

        refused = stack.client.post(
            "/v1/models/tiny-assistant/generate", json={"prompt": ""}, headers=headers
        )
        assert refused.status_code == 422


def sse_events(body: str) -> list[tuple[str, dict]]:
    """(event, data) pairs of a server-sent-events body."""
    events, name = [], "message"
    for line in body.splitlines():
        if line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            events.append((name, json.loads(line.removeprefix("data:"))))
    return events


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def test_a_killed_sft_worker_resumes_and_its_step_counter_goes_on(
    embedded_settings: Settings, untrained_chat_llama: Path, tiny_chat_pairs: list[ChatPair], tmp_path: Path
) -> None:
    with running_stack(embedded_settings) as stack:
        stack.register_base_model("tiny-llama", f"local:{untrained_chat_llama}", task_family="causal-lm")
        _, key = stack.new_team()
        train_id = upload_instructions(stack, key, tmp_path / "train.jsonl", tiny_chat_pairs, chat=True)
        spec = {
            "task": "causal-lm",
            "base_model": "tiny-llama",
            "method": "lora",
            "train_dataset_id": train_id,
            "evaluation": None,
            "hyperparameters": {"epochs": 60, "batch_size": 2, "max_seq_length": 96, "save_steps": 20},
        }
        job_id = stack.client.post("/v1/jobs", json=spec, headers=stack.headers(key)).json()["id"]
        checkpoints = stack.wait_for_checkpoint(key, job_id)
        assert stack.worker is not None
        for child in _children(stack.worker.pid):
            os.kill(child, signal.SIGKILL)

        job = stack.wait_for(key, job_id, timeout_s=300)
        assert job["status"] == "succeeded", job
        assert job["attempt"] == 2
        resumed_step = int(job["result"]["train"]["resumed_from"].removeprefix("checkpoint-"))
        assert resumed_step >= max(checkpoint["step"] for checkpoint in checkpoints)
        assert job["result"]["train"]["global_step"] == job["progress"]["total_steps"] > resumed_step
        events = stack.client.get(
            f"/v1/jobs/{job_id}/events", params={"limit": 1000}, headers=stack.headers(key)
        ).json()["items"]
        restart = next(event["id"] for event in events if event["message"] == "train restarted (attempt 2)")
        resumed_progress = [
            event["data"]["step"] for event in events if event["type"] == "progress" and event["id"] > restart
        ]
        # After the restart the counter goes on from the checkpoint instead of starting over.
        assert resumed_progress and min(resumed_progress) > resumed_step
        assert resumed_progress == sorted(resumed_progress)
