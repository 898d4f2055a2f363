"""Serve a published classifier from the repository files with ONNX Runtime, without Triton.

The embedded default has no Triton; `POST /v1/models/{name}/predict` runs the same files Triton
would: the version's own tokenizer, its model.onnx and the labels file, so that what is checked
locally is what Triton serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shared.errors import NotFound
from shared.pipeline.export.onnx_export import LOGITS_OUTPUT
from shared.serving.prediction import Prediction, predictions_from_logits
from shared.serving.triton_config import onnx_model_name, tokenizer_model_name
from shared.serving.triton_repository import TOKENIZER_SUBDIR, read_model_config


class LocalModelRunner:
    """Load version `version` of `name` once; `predict` may then be called many times."""

    def __init__(self, repo_root: Path, name: str, version: int, threads: int | None = None) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        onnx_dir = repo_root / onnx_model_name(name)
        tokenizer_dir = repo_root / tokenizer_model_name(name)
        onnx_path = onnx_dir / str(version) / "model.onnx"
        if not onnx_path.is_file():
            raise NotFound(
                f"model {name!r} has no published version {version}",
                details={"model": name, "version": version},
            )
        onnx_config = read_model_config(onnx_dir)
        tokenizer_config = read_model_config(tokenizer_dir)
        (logits_output,) = [output for output in onnx_config.output if output.name == LOGITS_OUTPUT]
        self.labels = (onnx_dir / logits_output.label_filename).read_text().splitlines()
        self.input_names = [tensor.name for tensor in onnx_config.input]
        self.max_length = int(tokenizer_config.parameters["max_length"].string_value)
        self.max_batch_size = onnx_config.max_batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir / str(version) / TOKENIZER_SUBDIR)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Labels and scores for `texts`, in batches no larger than the model's max_batch_size."""
        predictions: list[Prediction] = []
        for start in range(0, len(texts), self.max_batch_size):
            batch = list(texts[start : start + self.max_batch_size])
            encoded = self.tokenizer(
                batch, padding="longest", truncation=True, max_length=self.max_length, return_tensors="np"
            )
            feeds = {name: encoded[name].astype(np.int64) for name in self.input_names}
            logits = self.session.run([LOGITS_OUTPUT], feeds)[0]
            predictions += predictions_from_logits(logits, self.labels)
        return predictions
