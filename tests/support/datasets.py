"""Reading the real public datasets in ../shared/datasets (never copied into the repository)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

DATASETS_DIR = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def read_rows(dataset: str, split: str) -> list[dict[str, Any]]:
    path = DATASETS_DIR / dataset / f"{split}.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def sample_rows(dataset: str, split: str, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """`count` rows drawn after a seeded shuffle (several datasets are sorted by label)."""
    rows = read_rows(dataset, split)
    random.Random(seed).shuffle(rows)
    return rows[:count]
