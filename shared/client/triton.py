"""The client product apps use to classify text with a published model on Triton over gRPC.

Apps send raw text to the model's ensemble (`TEXT`, BYTES `[batch, 1]`), which tokenizes and runs the
classifier inside Triton. The logits come back through Triton's classification extension as
"value:index:label" strings for every class, so the labels travel with the answer and the client
needs no labels file; the client turns the logits into probabilities.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from shared.pipeline.export.onnx_export import LOGITS_OUTPUT
from shared.serving.prediction import Prediction, predictions_from_logits

TEXT_INPUT = "TEXT"
UNAVAILABLE = "StatusCode.UNAVAILABLE"


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
    ) -> None:
        self.model_name = model_name
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
