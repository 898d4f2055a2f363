"""Where a job's files live in the object store: one place for every stage, route and study.

jobs/<id>/checkpoints/checkpoint-<step>/   Trainer checkpoints, each with a COMPLETE marker
jobs/<id>/model/                           the trained (merged) model and its tokenizer
jobs/<id>/adapter/                         the peft adapter (lora, qlora)
jobs/<id>/evaluation/                      report.json, predictions.jsonl, report.html, pictures/
jobs/<id>/export/                          ONNX variants, engines/<key>/model.plan, export.json
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

COMPLETE_MARKER = "COMPLETE"


@dataclass(frozen=True)
class JobLayout:
    job_id: uuid.UUID

    @property
    def root(self) -> str:
        return f"jobs/{self.job_id}"

    @property
    def model(self) -> str:
        return f"{self.root}/model"

    @property
    def adapter(self) -> str:
        return f"{self.root}/adapter"

    @property
    def checkpoints(self) -> str:
        return f"{self.root}/checkpoints"

    def checkpoint(self, name: str) -> str:
        return f"{self.checkpoints}/{name}"

    @property
    def evaluation(self) -> str:
        return f"{self.root}/evaluation"

    def evaluation_file(self, name: str) -> str:
        return f"{self.evaluation}/{name}"

    @property
    def export(self) -> str:
        return f"{self.root}/export"

    def export_file(self, name: str) -> str:
        return f"{self.export}/{name}"

    def file(self, relative_path: str) -> str:
        """A key under the job's root, for paths a client names (already checked by the caller)."""
        return f"{self.root}/{relative_path}"

    def relative(self, key: str) -> str:
        """`key` as a path inside the job (the inverse of `file`)."""
        return key.removeprefix(self.root + "/")
