"""Streaming text generation with ONNX Runtime GenAI over a causal LM's published files.

Shipped as `<name>/<version>/genai_stream.py` beside the Triton Python-backend model (`model.py`)
and imported by the embedded runner, so that Triton and the embedded default render the prompt with
the same chat template, stop on the same tokens and strings, and cut the text into the same chunks.
It depends only on onnxruntime-genai, numpy and transformers (the tokenizer and chat template that
training used), never on the rest of Temper: Triton's image has no Temper installed.

The request, as JSON (UTF-8):

    {"messages": [{"role": "user", "content": "..."}, ...],   # or "prompt": "..." (one user turn)
     "max_new_tokens": 128,          # optional; 1..the model's limit
     "temperature": 0.0,             # optional; 0 (the default) decodes greedily
     "top_p": 1.0, "top_k": 50,      # optional; used only when sampling
     "seed": 7,                      # optional; makes sampling repeatable
     "stop": ["\\n\\n"]}             # optional; up to 4 strings that end the answer (not included)

A prompt is always rendered with the model's chat template and the generation prompt: a raw prompt
without the template the model was tuned on is the usual cause of endless or garbled answers.
Generation ends at the end-of-turn/EOS token ("eos"), at max_new_tokens or the context length
("length"), at a stop string ("stop"), or when the caller cancels ("cancelled").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

GENAI_CONFIG = "genai_config.json"
MAX_STOP_STRINGS = 4
ROLES = ("system", "user", "assistant")
# What an incomplete UTF-8 sequence decodes to: held back until the next token completes it.
REPLACEMENT_CHARACTER = "\ufffd"


class RequestError(ValueError):
    """A generation request that cannot be served as sent; the message says which field and why."""


@dataclass(frozen=True)
class GenerationRequest:
    messages: tuple[tuple[str, str], ...]
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 50
    seed: int | None = None
    stop: tuple[str, ...] = ()

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    @classmethod
    def from_json(
        cls, payload: str | bytes | dict[str, Any], default_max_new_tokens: int, max_new_tokens_limit: int
    ) -> GenerationRequest:
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8")
        if isinstance(payload, str):
            try:
                payload = json.loads(payload)
            except json.JSONDecodeError as error:
                raise RequestError(f"the request is not JSON: {error}") from error
        if not isinstance(payload, dict):
            raise RequestError("the request must be a JSON object")
        unknown = sorted(
            set(payload)
            - {"messages", "prompt", "max_new_tokens", "temperature", "top_p", "top_k", "seed", "stop"}
        )
        if unknown:
            raise RequestError(f"unknown fields {unknown}")
        return cls(
            messages=_messages(payload),
            max_new_tokens=_integer(
                payload, "max_new_tokens", default_max_new_tokens, 1, max_new_tokens_limit
            ),
            temperature=_number(payload, "temperature", 0.0, 0.0, 2.0),
            top_p=_number(payload, "top_p", 1.0, 0.0, 1.0, exclusive_minimum=True),
            top_k=_integer(payload, "top_k", 50, 0, 1_000_000),
            seed=_integer(payload, "seed", None, 0, 2**31 - 1),
            stop=_stop_strings(payload),
        )


def _messages(payload: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    if ("messages" in payload) == ("prompt" in payload):
        raise RequestError("send exactly one of 'messages' (a chat) or 'prompt' (one user turn)")
    if "prompt" in payload:
        prompt = payload["prompt"]
        if not isinstance(prompt, str) or not prompt:
            raise RequestError("'prompt' must be a non-empty string")
        return (("user", prompt),)
    messages = payload["messages"]
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty list of {role, content} objects")
    parsed = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise RequestError(f"messages[{index}] must have exactly 'role' and 'content'")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise RequestError(f"messages[{index}].role must be one of {list(ROLES)}, not {role!r}")
        if not isinstance(content, str):
            raise RequestError(f"messages[{index}].content must be a string")
        parsed.append((role, content))
    if parsed[-1][0] == "assistant":
        raise RequestError("the last message must not be the assistant's: the model answers it")
    return tuple(parsed)


def _integer(payload: dict[str, Any], key: str, default: Any, low: int, high: int) -> Any:
    value = payload.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(f"'{key}' must be an integer from {low} to {high}")
    return value


def _number(
    payload: dict[str, Any],
    key: str,
    default: float,
    low: float,
    high: float,
    exclusive_minimum: bool = False,
) -> float:
    value = payload.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"'{key}' must be a number")
    if value > high or value < low or (exclusive_minimum and value == low):
        bound = f"above {low}" if exclusive_minimum else f"at least {low}"
        raise RequestError(f"'{key}' must be {bound} and at most {high}")
    return float(value)


def _stop_strings(payload: dict[str, Any]) -> tuple[str, ...]:
    stop = payload.get("stop", [])
    if isinstance(stop, str):
        stop = [stop]
    if (
        not isinstance(stop, list)
        or len(stop) > MAX_STOP_STRINGS
        or not all(isinstance(text, str) and text for text in stop)
    ):
        raise RequestError(f"'stop' must be a list of at most {MAX_STOP_STRINGS} non-empty strings")
    return tuple(stop)


@dataclass(frozen=True)
class GenerationChunk:
    """A piece of the answer; the last one of a request carries why generation ended."""

    text: str
    finish_reason: str | None = None
    # Tokens generated so far (the end-of-turn token not counted).
    tokens: int = 0

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


class IncrementalDecoder:
    """Text of generated tokens, one token at a time, as TGI and vLLM detokenize.

    Only a short window of recent tokens is decoded at each step, so a step costs the same however
    long the answer is; a window that ends inside a multi-byte character adds nothing until a later
    token completes it. The pieces joined equal decoding all the tokens at once.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.generated: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    @property
    def tokens(self) -> int:
        return len(self.generated)

    def add(self, token: int) -> str:
        """The text that `token` completes ("" while a character is still incomplete)."""
        self.generated.append(token)
        before = self._decode(self.generated[self.prefix_offset : self.read_offset])
        after = self._decode(self.generated[self.prefix_offset :])
        if len(after) <= len(before) or after.endswith(REPLACEMENT_CHARACTER):
            return ""
        self.prefix_offset, self.read_offset = self.read_offset, len(self.generated)
        return after[len(before) :]

    def flush(self) -> str:
        """What the window still holds at the end, an incomplete character included."""
        before = self._decode(self.generated[self.prefix_offset : self.read_offset])
        return self._decode(self.generated[self.prefix_offset :])[len(before) :]

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True) if tokens else ""


def genai_model(genai_dir: Path, threads: int | None = None) -> Any:
    """An `og.Model` over `genai_dir`, its CPU session limited to `threads` intra-op threads."""
    import onnxruntime_genai as og

    config = og.Config(str(genai_dir))
    if threads:
        config.overlay(
            json.dumps(
                {
                    "model": {
                        "decoder": {
                            "session_options": {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
                        }
                    }
                }
            )
        )
    return og.Model(config)


def end_token_ids(genai_dir: Path, tokenizer: Any) -> set[int]:
    """Every token that ends a turn: the GenAI config's EOS ids and the tokenizer's EOS token."""
    configured = json.loads((genai_dir / GENAI_CONFIG).read_text())["model"].get("eos_token_id", [])
    ids = set(configured if isinstance(configured, list) else [configured])
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


class GenAIGenerator:
    """Generate from the ONNX Runtime GenAI model in `genai_dir` (model files, tokenizer, template).

    One instance loads the model once; `stream` may be called many times, one request per call.
    """

    def __init__(self, genai_dir: Path, threads: int | None = None) -> None:
        from transformers import AutoTokenizer

        self.genai_dir = Path(genai_dir)
        self.model = genai_model(self.genai_dir, threads)
        self.tokenizer = AutoTokenizer.from_pretrained(self.genai_dir)
        if not getattr(self.tokenizer, "chat_template", None):
            raise RequestError(f"{self.genai_dir} has no chat template: prompts cannot be rendered")
        self.context_length = int(
            json.loads((self.genai_dir / GENAI_CONFIG).read_text())["model"]["context_length"]
        )
        self.stop_token_ids = end_token_ids(self.genai_dir, self.tokenizer)

    def prompt_ids(self, messages: tuple[tuple[str, str], ...]) -> list[int]:
        """The chat-templated prompt, tokenized as training tokenized it (the template adds specials)."""
        text = self.tokenizer.apply_chat_template(
            [{"role": role, "content": content} for role, content in messages],
            tokenize=False,
            add_generation_prompt=True,
        )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def stream(
        self, request: GenerationRequest, is_cancelled: Callable[[], bool] = lambda: False
    ) -> Iterator[GenerationChunk]:
        import onnxruntime_genai as og

        prompt_ids = self.prompt_ids(request.messages)
        room = self.context_length - len(prompt_ids)
        if room < 1:
            raise RequestError(
                f"the prompt is {len(prompt_ids)} tokens; the model's context holds {self.context_length}"
            )
        max_new_tokens = min(request.max_new_tokens, room)
        options: dict[str, Any] = {
            "max_length": len(prompt_ids) + max_new_tokens,
            "do_sample": request.sampling,
        }
        if request.sampling:
            options.update(temperature=request.temperature, top_p=request.top_p, top_k=request.top_k)
            if request.seed is not None:
                options["random_seed"] = request.seed
        params = og.GeneratorParams(self.model)
        params.set_search_options(**options)
        generator = og.Generator(self.model, params)
        generator.append_tokens(np.asarray(prompt_ids, dtype=np.int32))

        decoder = IncrementalDecoder(self.tokenizer)
        text = ""
        emitted = 0
        # Text that could still become a stop string is held back until it cannot.
        holdback = max((len(stop) for stop in request.stop), default=1) - 1
        finish_reason = None
        while finish_reason is None:
            if is_cancelled():
                finish_reason = "cancelled"
                break
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            if token in self.stop_token_ids:
                finish_reason = "eos"
                break
            text += decoder.add(token)
            # A stop string not found before must end in the new text, so it starts at or after what
            # was already emitted (held-back text included).
            stop_at = min(
                (found for found in (text.find(stop, emitted) for stop in request.stop) if found >= 0),
                default=-1,
            )
            if stop_at >= 0:
                text = text[:stop_at]
                finish_reason = "stop"
                break
            if decoder.tokens >= max_new_tokens or generator.is_done():
                finish_reason = "length"
                break
            ready = len(text) - holdback
            if ready > emitted:
                yield GenerationChunk(text=text[emitted:ready], tokens=decoder.tokens)
                emitted = ready
        if finish_reason != "stop":
            text += decoder.flush()
        yield GenerationChunk(text=text[emitted:], finish_reason=finish_reason, tokens=decoder.tokens)

    def generate(self, request: GenerationRequest) -> GenerationChunk:
        """The whole answer at once: the chunks joined, with the last chunk's finish reason."""
        pieces = list(self.stream(request))
        return GenerationChunk(
            text="".join(piece.text for piece in pieces),
            finish_reason=pieces[-1].finish_reason,
            tokens=pieces[-1].tokens,
        )
