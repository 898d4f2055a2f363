"""The client product apps use to call published models on Triton over gRPC.

Classifiers: apps send raw text to the model's ensemble (`TEXT`, BYTES `[batch, 1]`), which tokenizes
and runs the classifier inside Triton. The logits come back through Triton's classification extension
as "value:index:label" strings for every class, so the labels travel with the answer and the client
needs no labels file; the client turns the logits into probabilities.

Causal LMs: the generation model is decoupled, so `generate_stream` opens Triton's bidirectional
gRPC stream, sends one JSON request (`REQUEST`) and yields the text chunks as the model sends them,
until the response Triton marks final; `generate` joins them.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from shared.pipeline.export.onnx_export import LOGITS_OUTPUT
from shared.serving.prediction import Prediction, predictions_from_logits

TEXT_INPUT = "TEXT"
UNAVAILABLE = "StatusCode.UNAVAILABLE"
GENERATION_REQUEST_INPUT = "REQUEST"
GENERATION_TEXT_OUTPUT = "TEXT"
GENERATION_FINISHED_OUTPUT = "FINISHED"
GENERATION_FINISH_REASON_OUTPUT = "FINISH_REASON"
FINAL_RESPONSE_PARAMETER = "triton_final_response"


@dataclass(frozen=True)
class TextChunk:
    """A piece of a generated answer; the last one has `finished` and why generation ended."""

    text: str
    finished: bool = False
    # "eos" (end of turn), "length", "stop" (a stop string); None until the last chunk.
    finish_reason: str | None = None


@dataclass(frozen=True)
class GeneratedText:
    text: str
    finish_reason: str | None


class ServingUnavailable(Exception):
    """Triton could not be reached after every retry."""


class TemperClient:
    """Classify texts with `model_name` on the Triton at `url` ("host:8001").

    `model_version` "" lets Triton pick its loaded version. Each call waits at most `timeout_s`;
    a call answered UNAVAILABLE (server restarting, model reloading) is retried `retries` times
    with exponential backoff starting at `backoff_s`.
    """

    def __init__(
        self,
        url: str,
        model_name: str,
        model_version: str = "",
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.2,
        stream_timeout_s: float = 300.0,
    ) -> None:
        self.url = url
        self.model_name = model_name
        self.stream_timeout_s = stream_timeout_s
        self.model_version = model_version
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._client = grpcclient.InferenceServerClient(url=url)
        self._num_labels: int | None = None
        self._max_batch_size: int | None = None

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        """One prediction per text, in order; batches are cut to the model's max_batch_size."""
        if not texts:
            return []
        num_labels, max_batch_size = self._model_shape()
        predictions: list[Prediction] = []
        for start in range(0, len(texts), max_batch_size):
            predictions += self._classify_batch(list(texts[start : start + max_batch_size]), num_labels)
        return predictions

    def generate_stream(
        self,
        messages: Sequence[dict[str, str]] | None = None,
        *,
        prompt: str | None = None,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> Iterator[TextChunk]:
        """Chunks of the model's answer to a chat (`messages`) or one user turn (`prompt`).

        The model renders the prompt with its own chat template. Leaving the loop early cancels the
        request on the server. A stream that Triton answers UNAVAILABLE before any chunk (restarting,
        reloading) is retried like `classify`; an error after text has arrived is raised, since the
        answer so far cannot be taken back.
        """
        fields = {
            "messages": list(messages) if messages is not None else None,
            "prompt": prompt,
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "top_k": top_k,
            "seed": seed,
            "stop": list(stop) if stop is not None else None,
        }
        request = json.dumps({key: value for key, value in fields.items() if value is not None})
        attempt = 0
        while True:
            try:
                yield from self._stream_once(request)
                return
            except _UnavailableBeforeText as unavailable:
                if attempt == self.retries:
                    raise ServingUnavailable(
                        f"{self.model_name} unavailable after {attempt + 1} attempts: {unavailable}"
                    ) from unavailable.__cause__
            time.sleep(self.backoff_s * 2**attempt)
            attempt += 1

    def generate(self, messages: Sequence[dict[str, str]] | None = None, **options: Any) -> GeneratedText:
        """The whole answer: `generate_stream`'s chunks joined (same arguments)."""
        chunks = list(self.generate_stream(messages, **options))
        return GeneratedText(
            text="".join(chunk.text for chunk in chunks),
            finish_reason=chunks[-1].finish_reason if chunks else None,
        )

    def _stream_once(self, request: str) -> Iterator[TextChunk]:
        # One client per stream: a tritonclient client holds at most one stream at a time, and a
        # TemperClient may be shared by threads that each generate.
        client = grpcclient.InferenceServerClient(url=self.url)
        responses: queue.Queue[tuple[Any, InferenceServerException | None]] = queue.Queue()
        client.start_stream(callback=lambda result, error: responses.put((result, error)))
        finished = False
        try:
            request_input = grpcclient.InferInput(GENERATION_REQUEST_INPUT, [1], "BYTES")
            request_input.set_data_from_numpy(np.array([request.encode("utf-8")], dtype=np.object_))
            try:
                client.async_stream_infer(
                    self.model_name,
                    [request_input],
                    model_version=self.model_version,
                    request_id=uuid.uuid4().hex,
                    enable_empty_final_response=True,
                )
            except InferenceServerException as refused:
                # The stream already failed (server down or restarting): its error went to the
                # callback, and says whether to try again.
                try:
                    _, error = responses.get(timeout=self.timeout_s)
                except queue.Empty:
                    raise refused from None
                if error is not None and error.status() == UNAVAILABLE:
                    raise _UnavailableBeforeText(error.message()) from error
                raise error or refused from None
            received_text = False
            while not finished:
                try:
                    result, error = responses.get(timeout=self.stream_timeout_s)
                except queue.Empty:
                    raise ServingUnavailable(
                        f"{self.model_name} sent nothing for {self.stream_timeout_s:.0f}s"
                    ) from None
                if error is not None:
                    if not received_text and error.status() == UNAVAILABLE:
                        raise _UnavailableBeforeText(error.message()) from error
                    raise error
                parameters = result.get_response().parameters
                finished = (
                    FINAL_RESPONSE_PARAMETER in parameters and parameters[FINAL_RESPONSE_PARAMETER].bool_param
                )
                chunk = _text_chunk(result)
                if chunk is not None:
                    received_text = True
                    finished = finished or chunk.finished
                    yield chunk
        finally:
            # Unfinished (the caller stopped reading, or an error): cancel it on the server.
            client.stop_stream(cancel_requests=not finished)
            client.close()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TemperClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _model_shape(self) -> tuple[int, int]:
        """Number of labels and largest batch, asked of the server once per client."""
        if self._num_labels is None or self._max_batch_size is None:
            metadata = self._with_retries(
                self._client.get_model_metadata,
                self.model_name,
                self.model_version,
                client_timeout=self.timeout_s,
            )
            config = self._with_retries(
                self._client.get_model_config,
                self.model_name,
                self.model_version,
                client_timeout=self.timeout_s,
            ).config
            (logits,) = [output for output in metadata.outputs if output.name == LOGITS_OUTPUT]
            self._num_labels = int(logits.shape[-1])
            # A model without batching takes one request at a time, here one text.
            self._max_batch_size = max(config.max_batch_size, 1)
        return self._num_labels, self._max_batch_size

    def _classify_batch(self, texts: list[str], num_labels: int) -> list[Prediction]:
        text_input = grpcclient.InferInput(TEXT_INPUT, [len(texts), 1], "BYTES")
        text_input.set_data_from_numpy(np.array([[text.encode("utf-8")] for text in texts], dtype=np.object_))
        requested = grpcclient.InferRequestedOutput(LOGITS_OUTPUT, class_count=num_labels)
        result = self._with_retries(
            self._client.infer,
            self.model_name,
            [text_input],
            model_version=self.model_version,
            outputs=[requested],
            client_timeout=self.timeout_s,
        )
        logits, labels = _decode_classification(result.as_numpy(LOGITS_OUTPUT), num_labels)
        return predictions_from_logits(logits, labels)

    def _with_retries(self, call, *args, **kwargs):
        attempt = 0
        while True:
            try:
                return call(*args, **kwargs)
            except InferenceServerException as error:
                if error.status() != UNAVAILABLE:
                    raise
                if attempt == self.retries:
                    raise ServingUnavailable(
                        f"{self.model_name} unavailable after {attempt + 1} attempts: {error.message()}"
                    ) from error
            time.sleep(self.backoff_s * 2**attempt)
            attempt += 1


class _UnavailableBeforeText(Exception):
    """The stream failed UNAVAILABLE before any text arrived: safe to try again."""


def _text_chunk(result: grpcclient.InferResult) -> TextChunk | None:
    """The chunk in a streamed response; None for Triton's empty final response."""
    text = result.as_numpy(GENERATION_TEXT_OUTPUT)
    if text is None:
        return None
    finished = result.as_numpy(GENERATION_FINISHED_OUTPUT)
    reason = result.as_numpy(GENERATION_FINISH_REASON_OUTPUT)
    reason_text = _as_text(reason.reshape(-1)[0]) if reason is not None else ""
    return TextChunk(
        text=_as_text(text.reshape(-1)[0]),
        finished=bool(finished.reshape(-1)[0]) if finished is not None else False,
        finish_reason=reason_text or None,
    )


def _as_text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _decode_classification(entries: np.ndarray, num_labels: int) -> tuple[np.ndarray, list[str]]:
    """Turn "value:index:label" entries ([batch, num_labels], best first) back into logits by index."""
    logits = np.zeros((entries.shape[0], num_labels), dtype=np.float32)
    labels = [""] * num_labels
    for row, row_entries in enumerate(entries):
        for entry in row_entries:
            text = entry.decode("utf-8") if isinstance(entry, bytes) else str(entry)
            value, index, label = text.split(":", 2)
            logits[row, int(index)] = float(value)
            labels[int(index)] = label
    return logits, labels
