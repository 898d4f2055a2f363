"""Export a merged causal LM to ONNX Runtime GenAI for CPU serving (FP32 and INT4), and check both.

The merged model directory (plain safetensors, tokenizer, chat template) stays the portable artifact;
ONNX Runtime GenAI's model builder turns it into what the CPU serving path runs. Each variant is
checked against the PyTorch model before anyone serves it, and the figures are returned so that the
caller records them with the job:

- FP32 must reproduce PyTorch's greedy continuations token for token (HF `generate`, same chat
  template, same prompts, same number of new tokens). A mismatch raises `GenAIGreedyMismatch`:
  the FP32 export is what CPU serving falls back to, so a wrong one must stop the job.
- INT4 changes the weights, so its greedy text is expected to drift after a few tokens. It is
  checked on answer-token perplexity over (prompt, answer) rows instead: within a relative tolerance
  of PyTorch FP32 it is accepted; above it, it is rejected with its figures and left out (its
  directory removed), and the job goes on with FP32.

The builder runs in a child process: it needs several times the model's size in memory, and a
crash or a leak in it then costs the child, not the worker.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import StageError
from shared.pipeline.export.errors import ExportMismatch
from shared.pipeline.sft_data import IGNORED_LABEL, encode_conversation
from shared.pipeline.spec import GENAI_PRECISIONS, GenAIPrecision
from shared.serving.python_backend.genai_stream import genai_model

Precision = GenAIPrecision
PRECISIONS = GENAI_PRECISIONS
ChatMessages = list[dict[str, str]]
# Written into each built variant: what it was built from and how long it took.
BUILD_RECORD = "temper-build.json"
STAGING_PREFIX = ".building-"
BUILDER_OUTPUT_TAIL = 4000
# The builder's extra options per precision. INT4 uses k-quant with the most sensitive MatMuls (the
# LM head, llama.cpp's "mixed" layers) kept in INT8: measured on SmolLM2-135M, answer perplexity on 16
# alpaca_en_demo rows rose 12.3% over PyTorch FP32 with it and 29.4% with the default round-to-
# nearest INT4, at the same decoding speed (about 100 tokens/s on 2 threads) and 117 MB instead of
# 90 MB. ("is_symmetric=false" built a graph ONNX Runtime 1.31 refused to load.)
DEFAULT_BUILDER_OPTIONS: dict[str, dict[str, str]] = {"fp32": {}, "int4": {"algo_config": "k_quant_mixed"}}


class GenAIBuildFailed(StageError):
    """ONNX Runtime GenAI's model builder could not export the model (unsupported architecture, ...)."""

    code = "genai_build_failed"


class GenAIGreedyMismatch(ExportMismatch):
    """The FP32 export does not reproduce PyTorch's greedy continuations."""

    code = "genai_greedy_mismatch"


@dataclass(frozen=True)
class Divergence:
    """Where one greedy continuation first left the reference (token index among the new tokens)."""

    prompt_index: int
    token_index: int
    # None where that side had already stopped (end of turn) before this index.
    expected_token: int | None
    actual_token: int | None
    expected_text: str
    actual_text: str


@dataclass(frozen=True)
class GreedyParity:
    """How the variant's greedy continuations compare with PyTorch's on the same prompts."""

    prompts: int
    max_new_tokens: int
    identical: int
    # Share of prompts whose continuation is identical, token for token.
    agreement: float
    mean_matching_prefix_tokens: float
    first_divergence: Divergence | None


@dataclass(frozen=True)
class AnswerPerplexity:
    """exp of the mean negative log-likelihood of the answer tokens (end of turn included)."""

    perplexity: float
    mean_nll: float
    answer_tokens: int
    rows: int


@dataclass(frozen=True)
class GenAIVariant:
    precision: Precision
    # None once a rejected variant's files are removed.
    directory: Path | None
    size_bytes: int
    build_seconds: float
    # The builder's extra options the variant was built with.
    builder_options: dict[str, str]
    greedy: GreedyParity
    perplexity: AnswerPerplexity | None
    # (variant perplexity - PyTorch perplexity) / PyTorch perplexity.
    perplexity_increase: float | None
    rejected: str | None = None

    @property
    def accepted(self) -> bool:
        return self.rejected is None


@dataclass(frozen=True)
class GenAIExportResult:
    model_dir: Path
    reference_perplexity: AnswerPerplexity | None
    int4_ppl_tolerance: float
    variants: dict[str, GenAIVariant] = field(default_factory=dict)

    @property
    def accepted(self) -> list[str]:
        """The precisions that passed their check, in the order they were asked for."""
        return [precision for precision, variant in self.variants.items() if variant.accepted]

    def as_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, Path):
                return str(value)
            if isinstance(value, dict):
                return {key: plain(item) for key, item in value.items()}
            if isinstance(value, list):
                return [plain(item) for item in value]
            return value

        recorded: dict[str, Any] = plain(asdict(self))
        return recorded


@dataclass(frozen=True)
class PreparedRows:
    """Prompt and answer token ids, rendered once and fed to every backend."""

    prompt_ids: list[list[int]]
    answer_ids: list[list[int]]


def chat_prompt_ids(tokenizer: Any, messages: ChatMessages) -> list[int]:
    """The chat-templated prompt with the generation prompt, tokenized as training and serving do."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def prepare_rows(tokenizer: Any, rows: Sequence[tuple[ChatMessages, str]]) -> PreparedRows:
    """Prompts and answers tokenized exactly as training labels them (`sft_data.encode_conversation`):
    the answer is the template's rendering of it up to and including the end-of-turn token."""
    prompts, answers = [], []
    for messages, answer in rows:
        conversation = [*messages, {"role": "assistant", "content": answer}]
        encoded = encode_conversation(tokenizer, conversation, max_length=1 << 30)
        prompts.append(encoded.input_ids[: encoded.prompt_tokens])
        answers.append(encoded.input_ids[encoded.prompt_tokens :])
    return PreparedRows(prompt_ids=prompts, answer_ids=answers)


def pytorch_answer_losses(
    model: Any, rows: PreparedRows, pad_id: int, max_length: int, batch_size: int = 4
) -> list[tuple[float, int]]:
    """The same per-row losses under PyTorch; rows longer than `max_length` lose their start, as in
    `genai_answer_losses`, so both backends score the same tokens."""
    from shared.pipeline.evaluate.generation import answer_losses

    sequences = [
        (prompt + answer)[-max_length:]
        for prompt, answer in zip(rows.prompt_ids, rows.answer_ids, strict=True)
    ]
    labels = [
        ([IGNORED_LABEL] * len(prompt) + answer)[-max_length:]
        for prompt, answer in zip(rows.prompt_ids, rows.answer_ids, strict=True)
    ]
    return answer_losses(model, sequences, labels, pad_id, batch_size)


def _perplexity(losses: Sequence[tuple[float, int]]) -> AnswerPerplexity:
    total = sum(loss for loss, _ in losses)
    tokens = sum(count for _, count in losses)
    return AnswerPerplexity(
        perplexity=math.exp(total / tokens), mean_nll=total / tokens, answer_tokens=tokens, rows=len(losses)
    )


def genai_answer_losses(model: Any, rows: PreparedRows, max_length: int) -> list[tuple[float, int]]:
    """Per row: summed negative log-likelihood of the answer tokens under an ONNX Runtime GenAI model.

    Each prompt + answer is appended to a fresh generator in one step; `get_output("logits")` then
    holds the logits of every position of that step ([1, tokens, vocab]), as the builder's graph
    computes them for a prompt (`get_logits` would give only the last position). This runs the
    exported graph through the same runtime, KV-cache handling and session options as serving,
    rather than a hand-fed ONNX session with empty past_key_values. Rows longer than `max_length`
    (at most the model's context) lose the start of their prompt, as in the PyTorch `answer_losses`.
    """
    import onnxruntime_genai as og

    results = []
    for prompt, answer in zip(rows.prompt_ids, rows.answer_ids, strict=True):
        sequence = (prompt + answer)[-max_length:]
        labels = ([-1] * len(prompt) + answer)[-max_length:]
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(sequence), do_sample=False)
        generator = og.Generator(model, params)
        generator.append_tokens(np.asarray(sequence, dtype=np.int32))
        logits = np.asarray(generator.get_output("logits"))
        if logits.shape[:2] != (1, len(sequence)):
            raise RuntimeError(
                f"ONNX Runtime GenAI returned logits of shape {logits.shape} for {len(sequence)} tokens; "
                "answer perplexity needs every position"
            )
        # Position t predicts token t + 1; only answer tokens are scored.
        targets = np.asarray(labels[1:])
        scored = np.flatnonzero(targets >= 0)
        predicting = logits[0, scored].astype(np.float64)
        shifted = predicting - predicting.max(axis=-1, keepdims=True)
        log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        nll = -float(log_probabilities[np.arange(len(scored)), targets[scored]].sum())
        results.append((nll, len(scored)))
    return results


def genai_context_length(genai_dir: Path) -> int:
    return int(json.loads((genai_dir / "genai_config.json").read_text())["model"]["context_length"])


def genai_answer_perplexity(
    genai_dir: Path, rows: PreparedRows, threads: int | None = None
) -> AnswerPerplexity:
    model = genai_model(genai_dir, threads)
    return _perplexity(genai_answer_losses(model, rows, genai_context_length(genai_dir)))


def genai_greedy_tokens(
    model: Any, prompt_ids: list[int], max_new_tokens: int, stop_token_ids: set[int]
) -> list[int]:
    """Greedy continuation of one prompt, ending with the stop token when one is generated."""
    import onnxruntime_genai as og

    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(prompt_ids) + max_new_tokens, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(np.asarray(prompt_ids, dtype=np.int32))
    tokens: list[int] = []
    while len(tokens) < max_new_tokens and not generator.is_done():
        generator.generate_next_token()
        tokens.append(int(generator.get_next_tokens()[0]))
        if tokens[-1] in stop_token_ids:
            break
    return tokens


def pytorch_greedy_tokens(
    model: Any, prompt_ids: list[int], max_new_tokens: int, stop_token_ids: set[int], pad_token_id: int
) -> list[int]:
    """HF `generate`, greedy, with an explicit config: no sampling defaults or penalties from the
    model's generation_config.json can creep in."""
    import torch
    from transformers import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        eos_token_id=sorted(stop_token_ids),
        pad_token_id=pad_token_id,
    )
    with torch.inference_mode():
        output = model.generate(torch.tensor([prompt_ids]), generation_config=config)
    tokens: list[int] = output[0, len(prompt_ids) :].tolist()
    return tokens


def compare_greedy(
    expected: list[list[int]], actual: list[list[int]], tokenizer: Any, max_new_tokens: int
) -> GreedyParity:
    identical = 0
    prefixes = []
    first: Divergence | None = None
    for index, (reference, candidate) in enumerate(zip(expected, actual, strict=True)):
        prefix = 0
        while prefix < min(len(reference), len(candidate)) and reference[prefix] == candidate[prefix]:
            prefix += 1
        prefixes.append(prefix)
        if reference == candidate:
            identical += 1
        elif first is None:
            first = Divergence(
                prompt_index=index,
                token_index=prefix,
                expected_token=reference[prefix] if prefix < len(reference) else None,
                actual_token=candidate[prefix] if prefix < len(candidate) else None,
                expected_text=tokenizer.decode(reference, skip_special_tokens=True),
                actual_text=tokenizer.decode(candidate, skip_special_tokens=True),
            )
    return GreedyParity(
        prompts=len(expected),
        max_new_tokens=max_new_tokens,
        identical=identical,
        agreement=identical / len(expected),
        mean_matching_prefix_tokens=float(np.mean(prefixes)),
        first_divergence=first,
    )


def stop_token_ids(model_config: Any, tokenizer: Any) -> set[int]:
    configured = model_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def _directory_size(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def _weights_fingerprint(model_dir: Path) -> dict[str, list[int]]:
    """Size and modification time of the source's weight and config files: enough to tell a re-run of
    the same export (reuse the build) from another model written to the same place (build again),
    without hashing gigabytes."""
    return {
        path.name: [path.stat().st_size, path.stat().st_mtime_ns]
        for path in sorted(model_dir.iterdir())
        if path.suffix in (".safetensors", ".json") and path.is_file()
    }


def build_genai_model(
    model_dir: Path,
    out_dir: Path,
    precision: Precision,
    options: Mapping[str, str] | None = None,
    timeout_s: float = 3600,
) -> float:
    """Run the model builder for CPU into `out_dir` (staged, then renamed); return the seconds it took.

    `options` are the builder's extra options (`key=value`), by default DEFAULT_BUILDER_OPTIONS for
    the precision. A directory already built from the same source with the same options is kept as
    it is (a stage re-run after a crash).
    """
    options = dict(DEFAULT_BUILDER_OPTIONS[precision] if options is None else options)
    record_path = out_dir / BUILD_RECORD
    fingerprint = _weights_fingerprint(model_dir)
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if (record.get("source_files"), record.get("precision"), record.get("options")) == (
            fingerprint,
            precision,
            options,
        ):
            return float(record["seconds"])
    staging = out_dir.parent / f"{STAGING_PREFIX}{out_dir.name}"
    cache = out_dir.parent / f"{STAGING_PREFIX}{out_dir.name}-cache"
    for leftover in (staging, cache, out_dir):
        if leftover.exists():
            shutil.rmtree(leftover)
    command = [
        sys.executable, "-m", "onnxruntime_genai.models.builder",
        "-i", str(model_dir), "-o", str(staging), "-p", precision, "-e", "cpu", "-c", str(cache),
        "--extra_options", "hf_token=false", *(f"{key}={value}" for key, value in sorted(options.items())),
    ]  # fmt: skip
    # Offline by rule: the builder reads only the local directory.
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.perf_counter()
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, env=environment, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise GenAIBuildFailed(
            f"the ONNX Runtime GenAI builder ran past {timeout_s:.0f}s for {precision}",
            details={"precision": precision},
        ) from error
    seconds = time.perf_counter() - started
    shutil.rmtree(cache, ignore_errors=True)
    if completed.returncode != 0 or not (staging / "genai_config.json").is_file():
        output = (completed.stdout + completed.stderr)[-BUILDER_OUTPUT_TAIL:]
        shutil.rmtree(staging, ignore_errors=True)
        raise GenAIBuildFailed(
            f"the ONNX Runtime GenAI builder failed for {precision} (exit {completed.returncode})",
            details={"precision": precision, "output_tail": output},
        )
    _ensure_chat_template(model_dir, staging)
    (staging / BUILD_RECORD).write_text(
        json.dumps(
            {"precision": precision, "options": options, "seconds": seconds, "source_files": fingerprint},
            indent=2,
        )
    )
    os.replace(staging, out_dir)
    return seconds


def _ensure_chat_template(model_dir: Path, genai_dir: Path) -> None:
    """Serving renders prompts with the template training used: make sure it travels with the export."""
    from transformers import AutoTokenizer

    source = AutoTokenizer.from_pretrained(model_dir).chat_template
    shipped = AutoTokenizer.from_pretrained(genai_dir).chat_template
    if shipped != source:
        (genai_dir / "chat_template.jinja").write_text(source)


def export_causal_lm_genai(
    model_dir: Path,
    out_dir: Path,
    *,
    check_prompts: Sequence[ChatMessages],
    check_rows: Sequence[tuple[ChatMessages, str]] = (),
    precisions: Sequence[Precision] = PRECISIONS,
    max_new_tokens: int = 32,
    int4_ppl_tolerance: float = 0.15,
    threads: int | None = None,
    keep_rejected: bool = False,
    builder_options: Mapping[str, Mapping[str, str]] = DEFAULT_BUILDER_OPTIONS,
) -> GenAIExportResult:
    """Build each precision under `out_dir/<precision>/` and check it against PyTorch (see module doc).

    `check_prompts` are chat conversations for the greedy comparison; `check_rows` are (prompt
    messages, reference answer) pairs for answer perplexity, required when INT4 is asked for.
    `keep_rejected` keeps a rejected variant's files (benchmarks measure it anyway);
    `builder_options` overrides the builder's extra options per precision.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown or not precisions:
        raise ValueError(
            f"precisions must be a non-empty subset of {list(PRECISIONS)}, got {list(precisions)}"
        )
    if not check_prompts:
        raise ValueError("check_prompts is empty: the greedy comparison needs prompts")
    if "int4" in precisions and not check_rows:
        raise ValueError("INT4 is checked on answer perplexity: pass check_rows")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not getattr(tokenizer, "chat_template", None):
        raise GenAIBuildFailed(
            f"{model_dir} has no chat template; serving could not render prompts as training did",
            details={"model_dir": str(model_dir)},
        )
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    stops = stop_token_ids(model.config, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    prompt_ids = [chat_prompt_ids(tokenizer, list(messages)) for messages in check_prompts]
    reference_tokens = [
        pytorch_greedy_tokens(model, ids, max_new_tokens, stops, pad_id) for ids in prompt_ids
    ]
    rows = prepare_rows(tokenizer, check_rows) if check_rows else None
    # Rows longer than the context lose the start of their prompt, the same way for every backend.
    max_length = int(getattr(model.config, "max_position_embeddings", 0) or 1 << 30)
    reference_perplexity = None
    if rows is not None:
        with torch.inference_mode():
            losses = pytorch_answer_losses(model, rows, pad_id, max_length)
        reference_perplexity = _perplexity(losses)
    del model

    out_dir.mkdir(parents=True, exist_ok=True)
    variants: dict[str, GenAIVariant] = {}
    for precision in precisions:
        directory = out_dir / precision
        options = dict(builder_options.get(precision, DEFAULT_BUILDER_OPTIONS[precision]))
        seconds = build_genai_model(model_dir, directory, precision, options)
        genai = genai_model(directory, threads)
        actual = [genai_greedy_tokens(genai, ids, max_new_tokens, stops) for ids in prompt_ids]
        greedy = compare_greedy(reference_tokens, actual, tokenizer, max_new_tokens)
        perplexity = increase = None
        if rows is not None and reference_perplexity is not None:
            context = min(max_length, genai_context_length(directory))
            perplexity = _perplexity(genai_answer_losses(genai, rows, context))
            increase = (
                perplexity.perplexity - reference_perplexity.perplexity
            ) / reference_perplexity.perplexity
        del genai
        rejected = None
        if precision == "fp32" and greedy.identical < greedy.prompts:
            raise GenAIGreedyMismatch(
                f"the FP32 ONNX Runtime GenAI export gives other greedy text than PyTorch on "
                f"{greedy.prompts - greedy.identical} of {greedy.prompts} prompts",
                details={"greedy": asdict(greedy), "directory": str(directory)},
            )
        if (
            precision == "int4"
            and perplexity is not None
            and increase is not None
            and increase > int4_ppl_tolerance
        ):
            rejected = (
                f"answer perplexity {perplexity.perplexity:.4g} is {increase:+.1%} against PyTorch FP32 "
                f"(tolerance {int4_ppl_tolerance:+.0%})"
            )
        size = _directory_size(directory)
        if rejected and not keep_rejected:
            shutil.rmtree(directory)
        variants[precision] = GenAIVariant(
            precision=precision,
            directory=None if rejected and not keep_rejected else directory,
            size_bytes=size,
            build_seconds=seconds,
            builder_options=options,
            greedy=greedy,
            perplexity=perplexity,
            perplexity_increase=increase,
            rejected=rejected,
        )
    return GenAIExportResult(
        model_dir=model_dir,
        reference_perplexity=reference_perplexity,
        int4_ppl_tolerance=int4_ppl_tolerance,
        variants=variants,
    )
