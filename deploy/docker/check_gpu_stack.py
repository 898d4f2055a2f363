"""Run while the GPU worker image is built (no GPU there): what can be checked without one.

- torch's CUDA major is the one of the Triton release's TensorRT package (`tensorrt-cu13`: 13), so
  that torch, TensorRT and the serving Triton share a CUDA;
- bitsandbytes carries kernels built for torch's CUDA (QLoRA would fail at the first step otherwise).

Usage: python check_gpu_stack.py <TENSORRT_PACKAGE>
"""

from __future__ import annotations

import sys
from importlib.metadata import files
from pathlib import PurePosixPath

import torch


def main(tensorrt_package: str) -> None:
    tensorrt_cuda = tensorrt_package.rpartition("-cu")[2]
    cuda = torch.version.cuda
    if not cuda or cuda.split(".")[0] != tensorrt_cuda:
        sys.exit(f"torch is built for CUDA {cuda}, {tensorrt_package} for CUDA {tensorrt_cuda}")
    wanted = "libbitsandbytes_cuda" + cuda.replace(".", "")
    kernels = sorted(
        PurePosixPath(str(path)).name
        for path in files("bitsandbytes") or []
        if PurePosixPath(str(path)).name.startswith("libbitsandbytes_cuda")
    )
    if not any(name.startswith(wanted) for name in kernels):
        sys.exit(f"bitsandbytes has no {wanted}* (it has {', '.join(kernels) or 'no CUDA kernels'})")
    print(f"torch CUDA {cuda} matches {tensorrt_package}; bitsandbytes has {wanted}")


if __name__ == "__main__":
    main(sys.argv[1])
