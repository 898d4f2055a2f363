"""Triton Python-backend model: raw text in, the classifier's token tensors out.

Shipped as `<name>_tokenizer/<version>/model.py`; the job's own tokenizer files sit beside it in
`<version>/tokenizer/`, so that serving tokenizes exactly as training did. The longest accepted
sequence comes from the config's `max_length` parameter, the output names from its outputs.
"""

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils
from transformers import AutoTokenizer

TEXT_INPUT = "TEXT"


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        model_config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        self.tokenizer = AutoTokenizer.from_pretrained(version_dir / "tokenizer")
        self.max_length = int(model_config["parameters"]["max_length"]["string_value"])
        self.output_names = [output["name"] for output in model_config["output"]]

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            # TYPE_STRING [batch, 1] arrives as an object array of bytes.
            raw = pb_utils.get_input_tensor_by_name(request, TEXT_INPUT).as_numpy()
            texts = [
                value.decode("utf-8") if isinstance(value, bytes) else str(value) for value in raw.reshape(-1)
            ]
            encoded = self.tokenizer(
                texts, padding="longest", truncation=True, max_length=self.max_length, return_tensors="np"
            )
            tensors = [pb_utils.Tensor(name, encoded[name].astype(np.int64)) for name in self.output_names]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self) -> None:
        del self.tokenizer
