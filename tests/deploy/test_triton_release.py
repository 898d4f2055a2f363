"""One file states the Triton release and the TensorRT inside it; the images and the export follow it."""

from __future__ import annotations

import re
import sys
import tomllib
import types
from pathlib import Path

import pytest
import torch

from shared.pipeline.export.errors import TensorRTUnavailable
from shared.pipeline.export.tensorrt import EngineProfile, build_tensorrt_engine
from shared.serving.triton_release import RELEASE_FILE, parse_release, triton_release
from tests.support.stack import REPO_ROOT

DOCKER = REPO_ROOT / "deploy" / "docker"


def test_the_triton_image_is_built_from_the_release() -> None:
    dockerfile = (DOCKER / "triton.Dockerfile").read_text()

    default = re.search(r"^ARG TRITON_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert default and default.group(1) == triton_release().triton_image
    assert all(
        line == "FROM ${TRITON_IMAGE}" or line.startswith("FROM ${TRITON_IMAGE} AS ")
        for line in dockerfile.splitlines()
        if line.startswith("FROM ")
    )
    assert ":" in triton_release().triton_image and not triton_release().triton_image.endswith(":latest")


def test_the_gpu_worker_installs_the_releases_tensorrt_and_nothing_else_pins_it() -> None:
    dockerfile = (DOCKER / "worker-gpu.Dockerfile").read_text()
    release = triton_release()
    assert "COPY shared/serving/triton_release.env " in dockerfile
    assert '"$TENSORRT_PACKAGE" "$TENSORRT_VERSION"' in dockerfile and "'.[gpu]'" in dockerfile
    # The version is stated once: the gpu extra names the package without a version.
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert release.tensorrt_package in extras["gpu"]
    assert any(requirement.startswith("bitsandbytes==") for requirement in extras["gpu"])
    assert release.tensorrt_version not in (REPO_ROOT / "pyproject.toml").read_text()


def test_the_release_file_is_what_sh_reads() -> None:
    assert parse_release(RELEASE_FILE.read_text()) == triton_release()
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_release('TRITON_IMAGE="quoted"\n')
    with pytest.raises(ValueError, match="TENSORRT_VERSION"):
        parse_release("TRITON_IMAGE=x\nTENSORRT_PACKAGE=y\n")


def _fake_tensorrt(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *_: (9, 0))
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__=version))


def test_an_engine_is_refused_with_another_tensorrt_than_tritons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_tensorrt(monkeypatch, "11.4.0.106")

    with pytest.raises(TensorRTUnavailable) as raised:
        build_tensorrt_engine(tmp_path / "model.onnx", tmp_path, ["input_ids"], EngineProfile())

    assert "11.4.0.106" in raised.value.reason and triton_release().tensorrt_version in raised.value.reason
    assert not any(tmp_path.iterdir())  # nothing half-built
