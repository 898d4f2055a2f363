"""A published causal LM served two ways: on Triton's gRPC streaming protocol (the stub running the
real generation model.py) called by TemperClient, and by the embedded runner over the same files.

The tiny chat Llama learned 12 alpaca answers; served greedily through either path it must give
PyTorch's answers word for word and stop at its end-of-turn token.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from shared.client.triton import ServingUnavailable, TemperClient
from shared.errors import InvalidInput, NotFound
from shared.serving.local_generation import LocalGenerationRunner, LocalGenerationRunners
from shared.serving.triton_control import TritonControl
from shared.storage.local import LocalObjectStore
from tests.serving.conftest import CHAT_INT4_MODEL, CHAT_MODEL, PublishedChat
from tests.support.tiny_llama import greedy_answer
from tests.support.triton_stub import RunningStub

StartServer = Callable[..., RunningStub]


@pytest.fixture
def chat_server(published_chat: PublishedChat, triton_server: StartServer) -> Iterator[RunningStub]:
    server = triton_server(published_chat.root)
    control = TritonControl(server.url)
    control.load_model(CHAT_MODEL)
    control.close()
    yield server


@pytest.fixture(scope="module")
def local_chat(published_chat: PublishedChat) -> LocalGenerationRunner:
    return LocalGenerationRunner(published_chat.root, CHAT_MODEL, 1)


def test_triton_streams_pytorchs_greedy_answers_and_stops_at_end_of_turn(
    chat_server: RunningStub, tiny_chat_llama: Path, tiny_chat_pairs
) -> None:
    with TemperClient(chat_server.url, CHAT_MODEL) as client:
        for question, answer in tiny_chat_pairs[:4]:
            chunks = list(client.generate_stream(prompt=question, max_new_tokens=48))
            assert (
                "".join(chunk.text for chunk in chunks) == answer == greedy_answer(tiny_chat_llama, question)
            )
            # Streamed: text arrives in pieces, and only the last piece says it is the last.
            assert len(chunks) > 2
            assert [chunk.finished for chunk in chunks] == [False] * (len(chunks) - 1) + [True]
            assert chunks[-1].finish_reason == "eos"
    # Each request ended with Triton's final flag and no error.
    assert all(error is None for _, _, error in chat_server.servicer.completed_streams)


def test_the_embedded_runner_gives_the_same_chunks_as_triton(
    chat_server: RunningStub, local_chat: LocalGenerationRunner, tiny_chat_pairs
) -> None:
    question = tiny_chat_pairs[6][0]
    with TemperClient(chat_server.url, CHAT_MODEL) as client:
        over_triton = [(chunk.text, chunk.finish_reason) for chunk in client.generate_stream(prompt=question)]
    locally = [(chunk.text, chunk.finish_reason) for chunk in local_chat.stream({"prompt": question})]
    assert over_triton == locally
    assert "".join(text for text, _ in locally) == tiny_chat_pairs[6][1]


def test_a_stop_string_ends_the_answer_before_it(
    chat_server: RunningStub, local_chat: LocalGenerationRunner, tiny_chat_pairs
) -> None:
    question, answer = tiny_chat_pairs[2]
    assert answer == "15% of 500 is 75."
    with TemperClient(chat_server.url, CHAT_MODEL) as client:
        result = client.generate(prompt=question, stop=[" is", "never"])
    assert (result.text, result.finish_reason) == ("15% of 500", "stop")
    local = local_chat.generate({"prompt": question, "stop": [" is", "never"]})
    assert (local.text, local.finish_reason) == ("15% of 500", "stop")


def test_max_new_tokens_cuts_the_answer(chat_server: RunningStub, tiny_chat_pairs) -> None:
    question, answer = tiny_chat_pairs[6]
    with TemperClient(chat_server.url, CHAT_MODEL) as client:
        result = client.generate([{"role": "user", "content": question}], max_new_tokens=3)
    assert result.finish_reason == "length"
    assert result.text and answer.startswith(result.text) and result.text != answer


def test_without_the_chat_template_the_model_does_not_answer(
    local_chat: LocalGenerationRunner, tiny_chat_pairs
) -> None:
    """The trap the template guards against: the same question, not rendered as the model was tuned."""
    question, answer = tiny_chat_pairs[6]
    generator = local_chat.generator
    raw_prompt = generator.tokenizer(question, add_special_tokens=False)["input_ids"]
    templated = generator.prompt_ids((("user", question),))
    assert templated[: len(raw_prompt)] != raw_prompt and len(templated) > len(raw_prompt)
    from shared.pipeline.export.genai import genai_greedy_tokens

    untemplated = genai_greedy_tokens(generator.model, raw_prompt, 24, generator.stop_token_ids)
    assert generator.tokenizer.decode(untemplated, skip_special_tokens=True) != answer
    assert local_chat.generate({"prompt": question}).text == answer


def test_the_int4_model_serves_the_learned_answers(
    published_chat: PublishedChat, triton_server: StartServer, tiny_chat_pairs
) -> None:
    server = triton_server(published_chat.root)
    control = TritonControl(server.url)
    control.load_model(CHAT_INT4_MODEL)
    with TemperClient(server.url, CHAT_INT4_MODEL) as client:
        answers = [client.generate(prompt=question).text for question, _ in tiny_chat_pairs[:6]]
    # Measured: INT4 keeps all six of these memorised answers.
    assert answers == [answer for _, answer in tiny_chat_pairs[:6]]
    control.close()


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"prompt": "hi", "max_new_tokens": 5000}, "'max_new_tokens' must be an integer from 1 to 1024"),
        ({"messages": []}, "'messages' must be a non-empty list"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role must be one of"),
        ({"prompt": "hi", "temperature": -1}, "'temperature' must be at least 0.0"),
    ],
)
def test_a_bad_request_is_refused_with_the_field_named(
    chat_server: RunningStub, local_chat: LocalGenerationRunner, request_fields: dict, message: str
) -> None:
    with (
        TemperClient(chat_server.url, CHAT_MODEL) as client,
        pytest.raises(InferenceServerException) as raised,
    ):
        list(client.generate_stream(**request_fields))
    assert message in raised.value.message()
    with pytest.raises(InvalidInput) as invalid:
        list(local_chat.stream(request_fields))
    assert message in invalid.value.message and invalid.value.status_code == 422


def test_a_request_cancelled_on_the_server_ends_with_a_cancelled_error(
    chat_server: RunningStub, tiny_chat_pairs
) -> None:
    """Triton's cancellation as the model sees it: `is_cancelled()` turns true after two tokens.

    (The tiny model answers in about a millisecond, faster than a client's cancel could arrive, so the
    check is made on the stub's stream runner directly.)
    """
    run = chat_server.servicer.models[CHAT_MODEL].streams[1]
    checks = iter([False, False, True])
    request = {
        "REQUEST": np.array([json.dumps({"prompt": tiny_chat_pairs[6][0]}).encode()], dtype=np.object_)
    }
    responses = list(run(request, lambda: next(checks), lambda _: None))
    assert [response.final for response in responses] == [False] * (len(responses) - 1) + [True]
    assert responses[-1].error == "the request was cancelled" and responses[-1].tensors is None
    sent = "".join(response.tensors["TEXT"][0].decode() for response in responses[:-1])
    assert tiny_chat_pairs[6][1].startswith(sent)


def test_leaving_the_stream_early_releases_it(chat_server: RunningStub, tiny_chat_pairs) -> None:
    question, answer = tiny_chat_pairs[6]
    with TemperClient(chat_server.url, CHAT_MODEL) as client:
        stream = client.generate_stream(prompt=question)
        first = next(stream)
        stream.close()
        assert answer.startswith(first.text)
        # The same client goes on generating after a stream it abandoned.
        assert client.generate(prompt=question).text == answer


def test_a_restarting_server_is_retried_and_then_reported(chat_server: RunningStub, tiny_chat_pairs) -> None:
    question, answer = tiny_chat_pairs[0]
    chat_server.servicer.unavailable_calls = 1
    with TemperClient(chat_server.url, CHAT_MODEL, backoff_s=0.01) as client:
        assert client.generate(prompt=question).text == answer
    chat_server.servicer.unavailable_calls = 3
    with (
        TemperClient(chat_server.url, CHAT_MODEL, retries=1, backoff_s=0.01) as client,
        pytest.raises(ServingUnavailable),
    ):
        client.generate(prompt=question)


def test_the_stub_refuses_a_decoupled_model_on_modelinfer_like_triton(chat_server: RunningStub) -> None:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(chat_server.url)
    request = grpcclient.InferInput("REQUEST", [1], "BYTES")
    request.set_data_from_numpy(np.array([b'{"prompt": "hi"}'], dtype=np.object_))
    with pytest.raises(InferenceServerException, match="decoupled transaction policy"):
        client.infer(CHAT_MODEL, [request])
    client.close()


def test_local_runners_are_made_once_and_read_a_bucket_layout(
    published_chat: PublishedChat, tmp_path: Path, tiny_chat_pairs
) -> None:
    bucket = LocalObjectStore(tmp_path / "bucket")
    bucket.upload_dir(published_chat.root, "")

    class Bucket:
        """The repository as a bucket: only the object-store calls, no file:// shortcut."""

        description = "s3://minio:9000/models"

        def __getattr__(self, name: str) -> object:
            return getattr(bucket, name)

    runners = LocalGenerationRunners(tmp_path / "cache")
    runner = runners.get(CHAT_MODEL, 1, Bucket())
    assert runners.get(CHAT_MODEL, 1, Bucket()) is runner
    question, answer = tiny_chat_pairs[3]
    assert runner.generate({"prompt": question}).text == answer
    assert (
        tmp_path / "cache" / "model_repository" / CHAT_MODEL / "1" / "genai" / "genai_config.json"
    ).is_file()
    with pytest.raises(NotFound):
        runners.get(CHAT_MODEL, 7, LocalObjectStore(published_chat.root))
