from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from shared.pipeline.export.errors import TensorRTUnavailable
from shared.pipeline.export.tensorrt import EngineProfile, build_tensorrt_engine, engine_key, precision_mode


def test_engine_key_names_gpu_architecture_and_tensorrt_minor_version() -> None:
    assert engine_key((9, 0), "10.13.3.9") == "sm90-trt10.13"
    assert engine_key((8, 6), "11.4.1") == "sm86-trt11.4"


def test_tensorrt_11_builds_strongly_typed_and_10_uses_the_fp16_flag() -> None:
    assert precision_mode("10.13.3.9") == "builder_flag"
    assert precision_mode("11.0.0") == "strongly_typed"


def test_profile_gives_min_opt_max_shapes_for_every_input() -> None:
    profile = EngineProfile(
        min_batch=1, opt_batch=8, max_batch=32, min_sequence=4, opt_sequence=64, max_sequence=128
    )

    shapes = profile.shapes(["input_ids", "attention_mask"])

    assert shapes["input_ids"] == ((1, 4), (8, 64), (32, 128))
    assert shapes.keys() == {"input_ids", "attention_mask"}


def test_profile_refuses_an_optimum_outside_its_range() -> None:
    with pytest.raises(ValueError, match="batch"):
        EngineProfile(min_batch=1, opt_batch=64, max_batch=32)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_the_build_is_skipped_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(TensorRTUnavailable) as raised:
        build_tensorrt_engine(tmp_path / "model.onnx", tmp_path, ["input_ids"], EngineProfile())

    assert raised.value.reason == "no GPU"
    assert raised.value.code == "tensorrt_unavailable"


def test_with_a_gpu_but_no_tensorrt_the_build_is_skipped_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    # A None entry makes `import tensorrt` fail as it does where the package is absent.
    monkeypatch.setitem(sys.modules, "tensorrt", None)

    with pytest.raises(TensorRTUnavailable) as raised:
        build_tensorrt_engine(tmp_path / "model.onnx", tmp_path, ["input_ids"], EngineProfile())

    assert raised.value.reason == "tensorrt not installed"
