"""Runs a Triton Python-backend model.py the way the backend does, in the Triton packages' environment.

    python run_model.py imports MODEL_PY
        every module MODEL_PY imports (at the top or inside functions) imports, then MODEL_PY itself
    python run_model.py execute MODEL_PY ARGS_JSON INPUTS_NPZ OUTPUTS_NPZ
        TritonPythonModel().initialize(args), execute([one request of INPUTS_NPZ]), finalize()

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
        assert hasattr(load(model_py), "TritonPythonModel"), f"{model_py.name} defines no TritonPythonModel"
        print(json.dumps(sorted(imported_modules(model_py.read_text()))))
        return
    import triton_python_backend_utils as pb_utils

    args = json.loads(Path(sys.argv[3]).read_text())
    inputs = np.load(sys.argv[4], allow_pickle=True)
    model = load(model_py).TritonPythonModel()
    model.initialize(args)
    request = pb_utils.InferenceRequest([pb_utils.Tensor(name, inputs[name]) for name in inputs.files])
    (response,) = model.execute([request])
    if response.has_error():
        raise SystemExit(f"execute answered an error: {response.error().message()}")
    np.savez(sys.argv[5], **{tensor.name(): tensor.as_numpy() for tensor in response.output_tensors()})
    if hasattr(model, "finalize"):
        model.finalize()


if __name__ == "__main__":
    main()
