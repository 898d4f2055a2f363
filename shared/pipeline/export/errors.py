"""Errors of the export stage, each with the code a job's `error.code` records."""

from __future__ import annotations


class ExportError(Exception):
    """An export step failed for a reason the job records (code, message, details)."""

    code = "export_failed"

    def __init__(self, message: str, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ExportMismatch(ExportError):
    """An exported variant does not reproduce the PyTorch model within its tolerance."""

    code = "export_mismatch"


class TensorRTUnavailable(ExportError):
    """No engine can be built here; the caller records `tensorrt: skipped (<reason>)`."""

    code = "tensorrt_unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__(f"TensorRT engine not built: {reason}", details={"reason": reason})
        self.reason = reason
