"""The Triton image's Python-backend models run with the packages that image installs.

The packages of deploy/docker/triton/requirements.txt (and nothing of Temper's environment: no
torch, no Temper code) are installed into an environment of their own, on Python 3.12 as in the
Triton image when this machine has it. Every model under shared/serving/python_backend/ must import
there, including what it imports inside functions; the models with an execute case below run their
initialize/execute/finalize there against real files.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import json_format
from transformers import AutoTokenizer

from shared.serving import python_backend
from shared.serving.triton_config import (
    GenerationServingOptions,
    ServingOptions,
    generation_model_config,
    tokenizer_model_config,
)
from shared.serving.triton_repository import publish_causal_lm
from tests.support.stack import REPO_ROOT

REQUIREMENTS = REPO_ROOT / "deploy" / "docker" / "triton" / "requirements.txt"
HARNESS = Path(__file__).parent / "backend_harness"
BACKEND_DIR = Path(python_backend.__file__).parent
BACKEND_FILES = sorted(path for path in BACKEND_DIR.glob("*.py") if path.name != "__init__.py")
# The models Triton loads (a model.py each); the other files ship beside one (the generation core).
MODEL_FILES = [path for path in BACKEND_FILES if "class TritonPythonModel" in path.read_text()]


def _python_like_tritons() -> str:
    """Python 3.12 (the Triton image's) where this machine has it, else this interpreter."""
    for candidate in [
        *sorted(glob.glob("/root/.pyenv/versions/3.12.*/bin/python3.12")),
        shutil.which("python3.12"),
    ]:
        if candidate and subprocess.run([candidate, "--version"], capture_output=True).returncode == 0:
            return candidate
    return sys.executable


@pytest.fixture(scope="session")
def triton_python() -> Path:
    """An environment with exactly the Triton image's extra packages (kept under var/, keyed by them)."""
    base = _python_like_tritons()
    version = subprocess.run(
        [base, "-c", "import sys; print(sys.version)"], capture_output=True, text=True
    ).stdout
    key = hashlib.sha256(REQUIREMENTS.read_bytes() + version.encode()).hexdigest()[:16]
    venv = REPO_ROOT / "var" / f"triton-backend-env-{key}"
    python = venv / "bin" / "python"
    if not (venv / "installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
        installed = subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                str(REQUIREMENTS),
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert installed.returncode == 0, (
            f"the Triton requirements do not install:\n{installed.stderr[-3000:]}"
        )
        (venv / "installed").write_text(version)
    return python


def _run(python: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    # Only the harness directory joins the packages: the project itself must not be importable.
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(HARNESS), "PYTHONNOUSERSITE": "1"}
    return subprocess.run(
        [str(python), str(HARNESS / "run_model.py"), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=HARNESS,
        env=env,
    )


def test_the_environment_has_the_serving_packages_and_none_of_temper_nor_torch(triton_python: Path) -> None:
    probe = (
        "import importlib.util as u, onnxruntime_genai, tokenizers, transformers; "
        "print([m for m in ('torch', 'shared', 'tritonclient') if u.find_spec(m)])"
    )
    result = subprocess.run(
        [str(triton_python), "-c", probe],
        capture_output=True,
        text=True,
        cwd=HARNESS,
        env={"PYTHONNOUSERSITE": "1"},
    )
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


@pytest.mark.parametrize("model_py", BACKEND_FILES, ids=lambda path: path.name)
def test_every_python_backend_model_imports_with_the_triton_packages(
    triton_python: Path, model_py: Path
) -> None:
    result = _run(triton_python, "imports", str(model_py))

    assert result.returncode == 0, result.stdout + result.stderr


# -- initialize / execute ------------------------------------------------------------------------------


def _tokenizer_case(
    tmp_path: Path, request: pytest.FixtureRequest
) -> tuple[dict, dict[str, np.ndarray], Callable]:
    """The ensemble's tokenizer step, laid out as publish writes it: <name>_tokenizer/1/tokenizer/."""
    tiny_base_model: Path = request.getfixturevalue("tiny_base_model")
    model_dir = tmp_path / "tickets_tokenizer"
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    tokenizer.save_pretrained(model_dir / "1" / "tokenizer")
    config = tokenizer_model_config(
        "tickets", ["input_ids", "attention_mask"], ServingOptions(max_sequence_length=16)
    )
    args = {
        "model_config": json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True)),
        "model_repository": str(model_dir),
        "model_version": "1",
        "model_name": config.name,
    }
    texts = ["my invoice issue number 7 about the refund", "password reset"]
    inputs = {"TEXT": np.array([[text.encode()] for text in texts], dtype=np.object_)}

    def check(outputs: dict[str, np.ndarray]) -> None:
        # The same ids the training environment's tokenizer gives (same transformers and tokenizers).
        expected = tokenizer(texts, padding="longest", truncation=True, max_length=16, return_tensors="np")
        assert set(outputs) == {"input_ids", "attention_mask"}
        for name in outputs:
            assert outputs[name].dtype == np.int64
            assert outputs[name].tolist() == expected[name].tolist()

    return args, inputs, check


def _generation_case(
    tmp_path: Path, request: pytest.FixtureRequest
) -> tuple[dict, dict[str, np.ndarray], Callable]:
    """The decoupled generation model as publish writes it, over the tiny chat Llama's FP32 build:
    its streamed chunks must join into the answer the model learned, ending at its end of turn."""
    genai = request.getfixturevalue("tiny_chat_genai")
    question, answer = request.getfixturevalue("tiny_chat_pairs")[0]
    genai_dir = genai.variants["fp32"].directory
    published = publish_causal_lm(tmp_path / "repository", "assistant", 1, genai_dir, "fp32")
    config = generation_model_config("assistant", "fp32", GenerationServingOptions())
    args = {
        "model_config": json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True)),
        "model_repository": str(published.root / "assistant"),
        "model_version": "1",
        "model_name": "assistant",
    }
    body = json.dumps({"prompt": question, "max_new_tokens": 48}).encode()
    inputs = {"REQUEST": np.array([body], dtype=np.object_)}

    def check(outputs: dict[str, np.ndarray]) -> None:
        count = int(outputs["__final__"][0]) + 1
        texts = [outputs[f"TEXT__{index}"][0].decode() for index in range(count)]
        assert count > 2 and "".join(texts) == answer
        assert (
            bool(outputs[f"FINISHED__{count - 1}"][0]) and outputs[f"FINISH_REASON__{count - 1}"][0] == b"eos"
        )

    return args, inputs, check


# Model file -> how to run it. A Python-backend model added under shared/serving/python_backend/
# needs its case here: the test below fails until it has one.
EXECUTE_CASES = {"tokenizer_model.py": _tokenizer_case, "generation_model.py": _generation_case}


def test_every_python_backend_model_has_an_execute_case() -> None:
    missing = sorted({path.name for path in MODEL_FILES} - set(EXECUTE_CASES))
    assert not missing, (
        f"add an initialize/execute case for {missing} to EXECUTE_CASES in {Path(__file__).name}"
    )


@pytest.mark.parametrize(
    "model_py", [path for path in MODEL_FILES if path.name in EXECUTE_CASES], ids=lambda path: path.name
)
def test_python_backend_model_runs_with_the_triton_packages(
    triton_python: Path, model_py: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    args, inputs, check = EXECUTE_CASES[model_py.name](tmp_path, request)
    (tmp_path / "args.json").write_text(json.dumps(args))
    np.savez(tmp_path / "inputs.npz", **inputs)

    result = _run(
        triton_python,
        "execute",
        str(model_py),
        str(tmp_path / "args.json"),
        str(tmp_path / "inputs.npz"),
        str(tmp_path / "outputs.npz"),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    outputs = np.load(tmp_path / "outputs.npz", allow_pickle=True)
    check({name: outputs[name] for name in outputs.files})
