"""Build TensorRT engines from the exported ONNX on a GPU worker, and check them against ONNX Runtime.

An engine runs only on the GPU architecture and the TensorRT version that built it, so every engine
is stored under a key naming both (`sm90-trt10.13/model.plan`), and only the TensorRT inside the
serving Triton image (`shared/serving/triton_release.env`) may build one. TensorRT 10 reduces
precision with the FP16 builder flag; TensorRT 11 only builds strongly typed networks, so FP16 must
already be in the ONNX graph (converted with ModelOpt AutoCast) before the build. Where no GPU, no
TensorRT or another TensorRT than Triton's is present, `build_tensorrt_engine` raises
`TensorRTUnavailable` with the reason, which the caller records as `tensorrt: skipped (<reason>)`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shared.pipeline.export.errors import ExportMismatch, TensorRTUnavailable
from shared.pipeline.export.onnx_export import LOGITS_OUTPUT, cpu_session
from shared.serving.triton_release import triton_release

ENGINE_FILENAME = "model.plan"
PrecisionMode = Literal["builder_flag", "strongly_typed"]


@dataclass(frozen=True)
class EngineProfile:
    """The batch and sequence ranges one optimization profile covers; `opt` is what TensorRT tunes for."""

    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 32
    min_sequence: int = 1
    opt_sequence: int = 128
    max_sequence: int = 128

    def __post_init__(self) -> None:
        for axis, low, mid, high in (
            ("batch", self.min_batch, self.opt_batch, self.max_batch),
            ("sequence", self.min_sequence, self.opt_sequence, self.max_sequence),
        ):
            if not 1 <= low <= mid <= high:
                raise ValueError(f"{axis} profile needs 1 <= min <= opt <= max, got {low}/{mid}/{high}")

    def shapes(self, input_names: Sequence[str]) -> dict[str, tuple[tuple[int, int], ...]]:
        """(min, opt, max) shapes per input, all inputs sharing the [batch, sequence] layout."""
        return {
            name: (
                (self.min_batch, self.min_sequence),
                (self.opt_batch, self.opt_sequence),
                (self.max_batch, self.max_sequence),
            )
            for name in input_names
        }


@dataclass(frozen=True)
class EngineParity:
    max_abs_logit_diff: float
    label_agreement: float
    rows: int


@dataclass(frozen=True)
class EngineBuildResult:
    path: Path
    key: str
    tensorrt_version: str
    compute_capability: str
    precision_mode: PrecisionMode
    fp16: bool
    build_seconds: float
    build_log: list[str]
    parity: EngineParity | None


def engine_key(compute_capability: tuple[int, int], tensorrt_version: str) -> str:
    """`sm90-trt10.13` for compute capability 9.0 and TensorRT 10.13.x: where the engine is stored."""
    major, minor = compute_capability
    trt_major_minor = ".".join(tensorrt_version.split(".")[:2])
    return f"sm{major}{minor}-trt{trt_major_minor}"


def precision_mode(tensorrt_version: str) -> PrecisionMode:
    """TensorRT 11 removed the precision builder flags; earlier versions still take them."""
    return "strongly_typed" if int(tensorrt_version.split(".")[0]) >= 11 else "builder_flag"


def _require_gpu_and_tensorrt() -> tuple[Any, tuple[int, int]]:
    """The tensorrt module and the GPU's compute capability, or TensorRTUnavailable saying why not."""
    import torch

    if not torch.cuda.is_available():
        raise TensorRTUnavailable("no GPU")
    try:
        import tensorrt
    except ImportError as missing:
        raise TensorRTUnavailable("tensorrt not installed") from missing
    return tensorrt, torch.cuda.get_device_capability()


def _fp16_onnx(onnx_path: Path, output_path: Path) -> Path:
    """Write an FP16 copy of the graph for strongly typed builds, inputs and logits kept as they are.

    AutoCast keeps precision-sensitive nodes (large reductions, softmax inputs) in FP32.
    """
    import onnx

    try:
        from modelopt.onnx.autocast import convert_to_mixed_precision
    except ImportError as missing:
        raise TensorRTUnavailable("FP16 on TensorRT 11 needs nvidia-modelopt (AutoCast)") from missing
    converted = convert_to_mixed_precision(
        onnx_path=str(onnx_path), low_precision_type="fp16", keep_io_types=True
    )
    onnx.save(converted, str(output_path))
    return output_path


def build_tensorrt_engine(
    onnx_path: Path,
    output_root: Path,
    input_names: Sequence[str],
    profile: EngineProfile,
    fp16: bool = True,
    workspace_bytes: int = 2 << 30,
    parity_feeds: Sequence[dict[str, np.ndarray]] = (),
    tolerance: float = 2e-2,
) -> EngineBuildResult:
    """Build `<output_root>/<key>/model.plan` for this GPU and check it against ONNX Runtime.

    `parity_feeds` are tokenized batches (int64 arrays by input name); FP16 logits are held to
    `tolerance`, looser than FP32's because half precision keeps about three decimal digits.
    """
    trt, compute_capability = _require_gpu_and_tensorrt()
    version = trt.__version__
    release = triton_release()
    if not release.serves_engines_of(version):
        raise TensorRTUnavailable(
            f"tensorrt {version} is installed, but {release.triton_image} loads only engines of "
            f"TensorRT {release.tensorrt_version}"
        )
    mode = precision_mode(version)
    key = engine_key(compute_capability, release.tensorrt_version)
    engine_dir = output_root / key
    engine_dir.mkdir(parents=True, exist_ok=True)

    logger = _collecting_logger(trt)
    started = time.perf_counter()
    builder = trt.Builder(logger)
    source = onnx_path
    if mode == "strongly_typed":
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        if fp16:
            source = _fp16_onnx(onnx_path, engine_dir / "model.fp16.onnx")
    else:
        network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = [str(parser.get_error(index)) for index in range(parser.num_errors)]
        raise ExportMismatch("TensorRT could not parse the ONNX graph", details={"errors": errors})

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if fp16 and mode == "builder_flag":
        config.set_flag(trt.BuilderFlag.FP16)
    optimization_profile = builder.create_optimization_profile()
    for name, (smallest, optimal, largest) in profile.shapes(input_names).items():
        optimization_profile.set_shape(name, smallest, optimal, largest)
    config.add_optimization_profile(optimization_profile)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportMismatch("TensorRT engine build failed", details={"log": logger.lines[-20:]})
    engine_path = engine_dir / ENGINE_FILENAME
    engine_path.write_bytes(bytes(serialized))
    build_seconds = time.perf_counter() - started

    parity = check_engine_parity(engine_path, onnx_path, parity_feeds, tolerance) if parity_feeds else None
    return EngineBuildResult(
        path=engine_path,
        key=key,
        tensorrt_version=version,
        compute_capability=f"{compute_capability[0]}.{compute_capability[1]}",
        precision_mode=mode,
        fp16=fp16,
        build_seconds=build_seconds,
        build_log=list(logger.lines),
        parity=parity,
    )


def _collecting_logger(trt: Any) -> Any:
    """A TensorRT logger that keeps the build messages so that they can be stored with the job."""

    class CollectingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.lines: list[str] = []

        def log(self, severity: object, message: str) -> None:
            self.lines.append(f"{severity}: {message}")

    return CollectingLogger()


def run_engine(engine_path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Run one batch through the engine on the GPU and return the logits."""
    import torch

    trt, _ = _require_gpu_and_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(engine_path.read_bytes())
    context = engine.create_execution_context()
    # The tensors must outlive execution: TensorRT holds raw device pointers to them.
    device_inputs = {}
    for name, array in feeds.items():
        dtype = trt.nptype(engine.get_tensor_dtype(name))
        device_inputs[name] = torch.from_numpy(np.ascontiguousarray(array.astype(dtype))).cuda()
        context.set_input_shape(name, tuple(array.shape))
        context.set_tensor_address(name, device_inputs[name].data_ptr())
    output_dtype = trt.nptype(engine.get_tensor_dtype(LOGITS_OUTPUT))
    logits = torch.empty(
        tuple(context.get_tensor_shape(LOGITS_OUTPUT)),
        dtype=torch.from_numpy(np.zeros(0, dtype=output_dtype)).dtype,
        device="cuda",
    )
    context.set_tensor_address(LOGITS_OUTPUT, logits.data_ptr())
    stream = torch.cuda.current_stream()
    if not context.execute_async_v3(stream.cuda_stream):
        raise ExportMismatch("TensorRT engine execution failed", details={"engine": str(engine_path)})
    stream.synchronize()
    return logits.float().cpu().numpy()


def check_engine_parity(
    engine_path: Path,
    onnx_path: Path,
    feeds: Sequence[dict[str, np.ndarray]],
    tolerance: float = 2e-2,
) -> EngineParity:
    """Compare the engine's logits with ONNX Runtime's on the same batches; raise beyond tolerance."""

    session = cpu_session(onnx_path)
    max_diff = 0.0
    agreeing = 0
    rows = 0
    for batch in feeds:
        reference = session.run([LOGITS_OUTPUT], batch)[0]
        engine_logits = run_engine(engine_path, batch)
        max_diff = max(max_diff, float(np.abs(reference - engine_logits).max()))
        agreeing += int((reference.argmax(-1) == engine_logits.argmax(-1)).sum())
        rows += len(reference)
    parity = EngineParity(max_abs_logit_diff=max_diff, label_agreement=agreeing / rows, rows=rows)
    if max_diff > tolerance:
        raise ExportMismatch(
            f"TensorRT logits differ from ONNX Runtime by {max_diff:.2e} (tolerance {tolerance:.0e})",
            details={"max_abs_logit_diff": max_diff, "label_agreement": parity.label_agreement},
        )
    return parity
