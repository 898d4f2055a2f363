"""The Triton release Temper serves on and the TensorRT inside it, read from `triton_release.env`.

That file is the single statement of the pairing: the GPU worker image installs its TensorRT, the
Triton image is built FROM its Triton image, and the export stage reads it here, so an engine is
built only with the TensorRT that the serving Triton can load.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

RELEASE_FILE = Path(__file__).with_name("triton_release.env")


@dataclass(frozen=True)
class TritonRelease:
    triton_image: str
    tensorrt_package: str
    tensorrt_version: str

    def serves_engines_of(self, tensorrt_version: str) -> bool:
        """Whether an engine built by `tensorrt_version` loads on this release (same major.minor)."""
        return _major_minor(tensorrt_version) == _major_minor(self.tensorrt_version)


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def parse_release(text: str) -> TritonRelease:
    values = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, separator, value = line.partition("=")
        if not separator or not key or not value or " " in line or '"' in line or "'" in line:
            raise ValueError(f"{RELEASE_FILE.name} line {number}: expected KEY=VALUE, got {raw!r}")
        values[key] = value
    try:
        return TritonRelease(
            triton_image=values["TRITON_IMAGE"],
            tensorrt_package=values["TENSORRT_PACKAGE"],
            tensorrt_version=values["TENSORRT_VERSION"],
        )
    except KeyError as missing:
        raise ValueError(f"{RELEASE_FILE.name} lacks {missing.args[0]}") from None


@lru_cache
def triton_release() -> TritonRelease:
    return parse_release(RELEASE_FILE.read_text())
