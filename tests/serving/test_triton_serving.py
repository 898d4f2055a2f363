"""End to end: the published repository served over Triton's gRPC protocol, called by TemperClient."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from shared.client.triton import ServingUnavailable, TemperClient
from shared.serving.triton_control import TritonControl
from shared.serving.triton_repository import publish_classifier, read_model_config
from tests.serving.conftest import FP32_MODEL, INT8_MODEL, PublishedRepository
from tests.support.tiny_classifier import LABELS
from tests.support.triton_stub import RunningStub, start_triton_stub

StartServer = Callable[..., RunningStub]


def _agreement(predicted: list[str], expected: list[str]) -> float:
    return sum(a == b for a, b in zip(predicted, expected, strict=True)) / len(expected)


@pytest.mark.parametrize(("model", "minimum"), [(FP32_MODEL, 0.995), (INT8_MODEL, 0.99)])
def test_raw_text_through_the_ensemble_gives_the_pytorch_labels(
    published: PublishedRepository, triton_server: StartServer, model: str, minimum: float
) -> None:
    server = triton_server(published.root)
    control = TritonControl(server.url)
    control.load_model(model)

    with TemperClient(server.url, model) as client:
        predictions = client.classify(published.texts)

    assert len(predictions) == len(published.texts)
    assert _agreement([p.label for p in predictions], published.pytorch_labels) >= minimum
    assert set(predictions[0].scores) == set(LABELS)
    assert sum(predictions[0].scores.values()) == pytest.approx(1.0, abs=1e-5)
    control.close()


def test_loading_the_ensemble_loads_its_steps_and_the_index_shows_them(
    published: PublishedRepository, triton_server: StartServer
) -> None:
    server = triton_server(published.root)
    control = TritonControl(server.url)
    assert control.is_ready()

    control.load_model(FP32_MODEL)

    ready = {(entry.name, entry.version) for entry in control.repository_index() if entry.state == "READY"}
    assert ready == {(FP32_MODEL, "1"), ("spam_tokenizer", "1"), ("spam_onnx", "1")}
    control.unload_model(FP32_MODEL)
    assert not control.is_model_ready(FP32_MODEL)
    assert server.servicer.control_calls == [("load", FP32_MODEL), ("unload", FP32_MODEL)]
    control.close()


def test_rollback_pins_the_previous_version_through_a_config_override(
    published: PublishedRepository, triton_server: StartServer, tmp_path: Path
) -> None:
    root = tmp_path / "repository"
    publish_classifier(root, FP32_MODEL, 1, published.onnx_path, published.classifier_dir, LABELS)
    publish_classifier(root, FP32_MODEL, 2, published.onnx_path, published.classifier_dir, LABELS)
    server = triton_server(root)
    control = TritonControl(server.url)

    control.load_model("spam_onnx")
    assert control.is_model_ready("spam_onnx", "2") and not control.is_model_ready("spam_onnx", "1")
    control.load_version("spam_onnx", read_model_config(root / "spam_onnx"), 1)

    assert control.is_model_ready("spam_onnx", "1") and not control.is_model_ready("spam_onnx", "2")
    assert server.servicer.control_calls == [("load", "spam_onnx"), ("load", "spam_onnx")]
    control.close()


def test_a_config_triton_would_refuse_fails_to_load(
    published: PublishedRepository, triton_server: StartServer
) -> None:
    server = triton_server(published.root)
    control = TritonControl(server.url)
    broken = read_model_config(published.root / "spam_onnx")
    # Dims that repeat the batch dimension: Triton refuses the model at load.
    broken.output[0].dims[:] = [-1, len(LABELS)]

    with pytest.raises(InferenceServerException, match="rank"):
        control.load_model("spam_onnx", broken)
    control.close()


def test_client_retries_unavailable_answers_and_then_succeeds(
    published: PublishedRepository, triton_server: StartServer
) -> None:
    server = triton_server(published.root)
    TritonControl(server.url).load_model(FP32_MODEL)
    server.servicer.unavailable_calls = 2

    with TemperClient(server.url, FP32_MODEL, retries=3, backoff_s=0.01) as client:
        predictions = client.classify(published.texts[:4])

    assert [p.label for p in predictions] == published.pytorch_labels[:4]
    assert server.servicer.unavailable_calls == 0


def test_client_gives_up_after_its_retries(
    published: PublishedRepository, triton_server: StartServer
) -> None:
    server = triton_server(published.root)
    TritonControl(server.url).load_model(FP32_MODEL)

    with TemperClient(server.url, FP32_MODEL, retries=2, backoff_s=0.01) as client:
        client.classify(published.texts[:1])
        server.servicer.unavailable_calls = 10
        with pytest.raises(ServingUnavailable):
            client.classify(published.texts[:1])
    # One first try and two retries reached the server.
    assert server.servicer.unavailable_calls == 7


def test_client_waits_out_a_server_that_is_still_starting(published: PublishedRepository) -> None:
    probe = start_triton_stub(published.root)
    port = int(probe.url.rsplit(":", 1)[1])
    probe.server.stop(grace=None).wait()
    started: list[RunningStub] = []

    def start_later() -> None:
        time.sleep(0.5)
        stub = start_triton_stub(published.root, port)
        stub.servicer.load(FP32_MODEL)
        started.append(stub)

    thread = threading.Thread(target=start_later)
    thread.start()
    try:
        with TemperClient(f"127.0.0.1:{port}", FP32_MODEL, retries=6, backoff_s=0.1) as client:
            predictions = client.classify(published.texts[:3])
    finally:
        thread.join()
        for stub in started:
            stub.server.stop(grace=None)
    assert [p.label for p in predictions] == published.pytorch_labels[:3]


def test_a_batch_above_max_batch_size_is_refused_and_the_client_cuts_batches_to_fit(
    published: PublishedRepository, triton_server: StartServer
) -> None:
    server = triton_server(published.root)
    TritonControl(server.url).load_model(FP32_MODEL)
    assert read_model_config(published.root / FP32_MODEL).max_batch_size == 32
    raw = grpcclient.InferenceServerClient(server.url)
    text = grpcclient.InferInput("TEXT", [40, 1], "BYTES")
    text.set_data_from_numpy(np.array([[b"hello"]] * 40, dtype=np.object_))

    with pytest.raises(InferenceServerException, match="exceeds max_batch_size"):
        raw.infer(FP32_MODEL, [text])
    with TemperClient(server.url, FP32_MODEL) as client:
        assert len(client.classify(published.texts[:40])) == 40
    raw.close()
