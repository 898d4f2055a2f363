"""Errors of the export stage, each with the code a job's `error.code` records."""

from __future__ import annotations

from shared.errors import StageError


class ExportMismatch(StageError):
    """An exported variant does not reproduce the PyTorch model within its tolerance."""

    code = "export_mismatch"


class TensorRTUnavailable(StageError):
    """No engine can be built here; the caller records `tensorrt: skipped (<reason>)`."""

    code = "tensorrt_unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__(f"TensorRT engine not built: {reason}", details={"reason": reason})
        self.reason = reason
