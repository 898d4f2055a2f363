"""What the worker's accelerator can do, and the guard for features that need a GPU.

Training asks this module once per run; the answer decides mixed precision and whether GPU-only
methods (qlora) may start at all. Nothing here touches a model.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Literal

import torch

from shared.errors import InvalidSpec

MixedPrecision = Literal["bf16", "fp16", "fp32"]


class GpuRequiredError(InvalidSpec, RuntimeError):
    """A GPU-only feature was requested on a worker without a CUDA GPU."""

    code = "gpu_required"


@dataclass(frozen=True)
class Accelerator:
    cuda_available: bool
    device_name: str
    # (major, minor) of the GPU, e.g. (9, 0) for an H100; None on a CPU-only worker.
    compute_capability: tuple[int, int] | None
    bf16_supported: bool

    @property
    def device(self) -> str:
        """Where training runs, as results record it: "cpu" or "cuda:<device name>"."""
        return f"cuda:{self.device_name}" if self.cuda_available else "cpu"

    @property
    def mixed_precision(self) -> MixedPrecision:
        """bf16 where the GPU supports it, fp16 on other CUDA GPUs, fp32 on CPU.

        bf16 comes first because it keeps fp32's exponent range and needs no loss scaling.
        """
        if self.cuda_available and self.bf16_supported:
            return "bf16"
        if self.cuda_available:
            return "fp16"
        return "fp32"

    @property
    def flash_attention(self) -> bool:
        """FlashAttention 2 can run: an Ampere-or-newer GPU and the flash_attn package installed.

        Packed sequences stay apart only under its variable-length kernels.
        """
        return (
            self.cuda_available
            and self.compute_capability is not None
            and self.compute_capability >= (8, 0)
            and importlib.util.find_spec("flash_attn") is not None
        )


def detect_accelerator() -> Accelerator:
    """Describe the first CUDA device, or the CPU when there is none."""
    if not torch.cuda.is_available():
        return Accelerator(
            cuda_available=False, device_name="cpu", compute_capability=None, bf16_supported=False
        )
    device_index = torch.cuda.current_device()
    return Accelerator(
        cuda_available=True,
        device_name=torch.cuda.get_device_name(device_index),
        compute_capability=torch.cuda.get_device_capability(device_index),
        bf16_supported=torch.cuda.is_bf16_supported(),
    )


def require_gpu(feature: str, accelerator: Accelerator | None = None) -> Accelerator:
    """Return the accelerator when it is a CUDA GPU; otherwise refuse `feature` with a clear reason."""
    accelerator = accelerator or detect_accelerator()
    if not accelerator.cuda_available:
        raise GpuRequiredError(f"{feature} needs a CUDA GPU; this worker has none")
    return accelerator
