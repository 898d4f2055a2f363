"""Train → evaluate → export → publish → promote, then predict through a Triton-protocol server and
through ONNX Runtime on the repository files; promote and rollback over REST load versions in order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from fastapi.testclient import TestClient
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from services.api.main import create_app
from shared.settings import Settings
from tests.support.stack import running_stack
from tests.support.tickets import write_rows
from tests.support.triton_stub import start_triton_stub


def _pytorch_labels(model_dir: Path, texts: list[str]) -> list[str]:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        logits = model(
            **tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
        ).logits
    return [model.config.id2label[int(index)] for index in np.argmax(logits.numpy(), axis=1)]


def test_publish_promote_predict_and_rollback(
    embedded_settings: Settings, tiny_base_model: Path, tmp_path: Path
) -> None:
    repository_root = embedded_settings.data_root / "model_repository"
    repository_root.mkdir(parents=True)
    stub = start_triton_stub(repository_root)
    settings = embedded_settings.model_copy(update={"triton_url": stub.url})
    try:
        with running_stack(settings) as stack:
            stack.register_base_model("tiny-bert", f"local:{tiny_base_model}")
            _, key = stack.new_team("shop")
            headers = stack.headers(key)
            train = stack.upload(key, write_rows(tmp_path / "train.jsonl", 90), name="train").json()
            test_path = write_rows(tmp_path / "test.jsonl", 40, offset=500)
            test = stack.upload(key, test_path, name="test").json()
            spec = {
                "base_model": "tiny-bert",
                "train_dataset_id": train["id"],
                "test_dataset_id": test["id"],
                "hyperparameters": {
                    "epochs": 2,
                    "batch_size": 8,
                    "learning_rate": 5e-3,
                    "max_seq_length": 32,
                },
                "evaluation": {"robustness": False, "bootstrap_resamples": 200},
                "export": {"int8": True},
                "publish": {"model": "tickets", "promote": True},
            }
            first = stack.client.post("/v1/jobs", json=spec, headers=headers).json()["id"]
            job = stack.wait_for(key, first, timeout_s=300)
            assert job["status"] == "succeeded", job
            assert job["completed_stages"] == ["validate", "train", "evaluate", "export", "publish"]
            export = job["result"]["export"]
            assert export["onnx"]["parity"]["max_abs_logit_diff"] <= 1e-3
            assert export["onnx"]["parity"]["label_agreement"] == 1.0
            assert export["onnx_int8"]["parity"]["label_agreement"] >= 0.99
            assert export["tensorrt"]["built"] is False and export["tensorrt"]["skipped"]
            publish = job["result"]["publish"]
            assert publish["version"] == 1 and publish["promoted"] and publish["loaded_on_triton"]
            name = publish["repository_name"]
            assert stub.servicer.control_calls == [
                ("load", f"{name}_tokenizer"),
                ("load", f"{name}_onnx"),
                ("load", name),
            ]

            # Raw text in, labels out, through the Triton protocol; same labels as PyTorch.
            texts = [json.loads(line)["text"] for line in test_path.read_text().splitlines()]
            answer = stack.client.post("/v1/models/tickets/predict", json={"texts": texts}, headers=headers)
            assert answer.status_code == 200, answer.text
            served = [prediction["label"] for prediction in answer.json()["predictions"]]
            model_dir = settings.data_root / "objects" / "jobs" / first / "model"
            reference = _pytorch_labels(model_dir, texts)
            agreement = np.mean([a == b for a, b in zip(served, reference, strict=True)])
            assert agreement >= 0.995, agreement

            versions = stack.client.get("/v1/models/tickets/versions", headers=headers).json()
            lineage = versions[0]["lineage"]
            assert lineage["datasets"]["train"]["sha256"] == train["sha256"]
            assert (
                lineage["evaluation"]["metrics"]["accuracy"]
                == job["result"]["evaluation"]["metrics"]["accuracy"]
            )

            second = stack.client.post("/v1/jobs", json=spec, headers=headers).json()["id"]
            assert stack.wait_for(key, second, timeout_s=300)["result"]["publish"]["version"] == 2
            assert stack.client.get("/v1/models/tickets", headers=headers).json()["production_version"] == 2
            assert set(stub.servicer.models[name].versions) == {2}

            calls_before = len(stub.servicer.control_calls)
            rolled = stack.client.post("/v1/models/tickets/rollback", headers=headers)
            assert rolled.status_code == 200 and rolled.json()["production_version"] == 1
            assert stub.servicer.control_calls[calls_before:] == [
                ("load", f"{name}_tokenizer"),
                ("load", f"{name}_onnx"),
                ("load", name),
            ]
            assert set(stub.servicer.models[name].versions) == {1}
            promoted = stack.client.post("/v1/models/tickets/versions/2/promote", headers=headers)
            assert promoted.json()["production_version"] == 2 and set(
                stub.servicer.models[name].versions
            ) == {2}

            # Without Triton, the control plane serves the same published files with ONNX Runtime.
            local_settings = settings.model_copy(update={"triton_url": None})
            with TestClient(create_app(local_settings)) as local:
                local_answer = local.post(
                    "/v1/models/tickets/predict", json={"texts": texts, "version": 1}, headers=headers
                )
            assert local_answer.status_code == 200, local_answer.text
            assert [p["label"] for p in local_answer.json()["predictions"]] == served

            # A new job compared with what is in production now, on the same test rows.
            challenger = {**spec, "evaluation": {"baseline": "production:tickets", "robustness": False}}
            challenger.pop("publish")
            challenger.pop("export")
            challenger_id = stack.client.post("/v1/jobs", json=challenger, headers=headers).json()["id"]
            challenged = stack.wait_for(key, challenger_id, timeout_s=300)
            assert challenged["status"] == "succeeded", challenged
            comparison = challenged["result"]["evaluation"]
            assert comparison["baseline"]["name"] == "tickets v2 (production)"
            second_accuracy = stack.client.get(f"/v1/jobs/{second}", headers=headers).json()["result"][
                "evaluation"
            ]
            assert comparison["baseline"]["metrics"]["accuracy"] == second_accuracy["metrics"]["accuracy"]

            # Another team sees none of it.
            _, other_key = stack.new_team("other")
            other = stack.headers(other_key)
            assert stack.client.get("/v1/models/tickets", headers=other).status_code == 404
            assert stack.client.post("/v1/models/tickets/rollback", headers=other).status_code == 404
            assert (
                stack.client.post(
                    "/v1/models/tickets/predict", json={"texts": ["x"]}, headers=other
                ).status_code
                == 404
            )
    finally:
        stub.server.stop(grace=None)
