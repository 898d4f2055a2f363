"""Runs a Triton Python-backend model.py the way the backend does, in the Triton packages' environment.

    python run_model.py imports MODEL_PY
        every module MODEL_PY imports (at the top or inside functions) imports, then MODEL_PY itself
    python run_model.py execute MODEL_PY ARGS_JSON INPUTS_NPZ OUTPUTS_NPZ
        TritonPythonModel().initialize(args), execute([one request of INPUTS_NPZ]), finalize();
        a decoupled model's responses (sent through its response sender) are saved as
        `<output>__<n>`, the n-th response's tensor, and `__final__` says which one ended the stream

Run with only numpy, the packages of deploy/docker/triton/requirements.txt and this directory (the
`triton_python_backend_utils` stand-in) importable.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

BACKEND_PROVIDED = {"triton_python_backend_utils"}


def imported_modules(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules - BACKEND_PROVIDED


def load(model_py: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("model", model_py)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    mode, model_py = sys.argv[1], Path(sys.argv[2])
    if mode == "imports":
        missing = {}
        for name in sorted(imported_modules(model_py.read_text())):
            try:
                importlib.import_module(name)
            except ImportError as error:
                missing[name] = str(error)
        if missing:
            raise SystemExit(f"{model_py.name} imports what the Triton image lacks: {json.dumps(missing)}")
        # A module shipped beside a model.py (the generation core) has no model of its own.
        if "class TritonPythonModel" in model_py.read_text():
            assert hasattr(load(model_py), "TritonPythonModel"), (
                f"{model_py.name} defines no TritonPythonModel"
            )
        print(json.dumps(sorted(imported_modules(model_py.read_text()))))
        return
    import triton_python_backend_utils as pb_utils

    args = json.loads(Path(sys.argv[3]).read_text())
    inputs = np.load(sys.argv[4], allow_pickle=True)
    model = load(model_py).TritonPythonModel()
    model.initialize(args)
    request = pb_utils.InferenceRequest([pb_utils.Tensor(name, inputs[name]) for name in inputs.files])
    returned = model.execute([request])
    if returned is None:  # decoupled: the responses went through the request's sender
        saved: dict[str, np.ndarray] = {}
        for index, (response, flags) in enumerate(request.sender.sent):
            if response is not None and response.has_error():
                raise SystemExit(f"execute answered an error: {response.error().message()}")
            for tensor in response.output_tensors() if response is not None else []:
                saved[f"{tensor.name()}__{index}"] = tensor.as_numpy()
            if flags & pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL:
                saved["__final__"] = np.array([index])
        np.savez(sys.argv[5], **saved)
    else:
        (response,) = returned
        if response.has_error():
            raise SystemExit(f"execute answered an error: {response.error().message()}")
        np.savez(sys.argv[5], **{tensor.name(): tensor.as_numpy() for tensor in response.output_tensors()})
    if hasattr(model, "finalize"):
        model.finalize()


if __name__ == "__main__":
    main()
