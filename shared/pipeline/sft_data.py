"""Instruction rows as Hugging Face datasets, tokenized under the model's chat template.

Rows go from the validated file into an Arrow table on disk (`Dataset.from_generator`), and are
tokenized with a batched, cached `map`: a million-row set is memory-mapped, never a Python list.

Each conversation is rendered with the chat template twice: the prompt (every message but the last,
plus the generation prompt) and the whole conversation. The tokens after the prompt are the answer;
only they carry labels, up to and including the token that ends the assistant's turn, so that the
model learns where to stop. Serving renders prompts with the same template (stored with the model),
and generation starts exactly where training's answers started.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from datasets import Dataset, Features, Value
from datasets import Sequence as FeatureSequence
from transformers import PreTrainedTokenizerBase

from shared.data.formats import DatasetFormat
from shared.data.instructions import iter_instruction_rows
from shared.errors import InvalidSpec

# Labels with this value are ignored by the loss (the convention of transformers' LM heads).
IGNORED_LABEL = -100

# The template used when neither the spec nor the base model brings one: ChatML's layout, with the
# tokenizer's end-of-sequence token closing every turn (so the usual stop token ends generation).
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
TemplateSource = Literal["spec", "model", "fallback"]

CONVERSATION_FEATURES = Features(
    {
        "row": Value("int64"),
        "messages": [{"role": Value("string"), "content": Value("string")}],
    }
)
ENCODED_COLUMNS = ("input_ids", "labels", "length", "prompt_tokens", "answer_tokens", "truncated")


def apply_chat_template(tokenizer: PreTrainedTokenizerBase, override: str | None) -> TemplateSource:
    """Give `tokenizer` the template the run uses: the spec's, the model's own, or the fallback."""
    if override is not None:
        tokenizer.chat_template = override
        return "spec"
    if getattr(tokenizer, "chat_template", None):
        return "model"
    tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return "fallback"


def render_prompt(tokenizer: PreTrainedTokenizerBase, messages: Sequence[dict[str, str]]) -> str:
    """The text the model reads before it answers: the messages and the assistant's turn opening."""
    rendered = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    assert isinstance(rendered, str)
    return rendered


@dataclass(frozen=True)
class EncodedConversation:
    input_ids: list[int]
    labels: list[int]
    prompt_tokens: int
    answer_tokens: int
    # Whether max_length cut anything: the start of the prompt first, the end of the answer only
    # when the answer alone is longer.
    truncated: bool


def encode_conversation(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[dict[str, str]], max_length: int
) -> EncodedConversation:
    """Token ids of the conversation and labels that are -100 everywhere but on the final answer."""
    prompt_text = render_prompt(tokenizer, messages[:-1])
    full_text = tokenizer.apply_chat_template(list(messages), tokenize=False)
    assert isinstance(full_text, str)
    if not full_text.startswith(prompt_text):
        raise InvalidSpec(
            "the chat template does not render a conversation as its prompt followed by the answer; "
            "set chat_template in the spec to one that does"
        )
    prompt_ids: list[int] = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    answer_ids = end_turn(
        tokenizer, tokenizer(full_text[len(prompt_text) :], add_special_tokens=False)["input_ids"]
    )
    truncated = len(prompt_ids) + len(answer_ids) > max_length
    if truncated:
        # Keep the whole answer and the end of the prompt (its nearest context); an answer longer
        # than max_length alone keeps its beginning.
        answer_ids = answer_ids[: max_length - 1]
        prompt_ids = prompt_ids[len(prompt_ids) - (max_length - len(answer_ids)) :]
    return EncodedConversation(
        input_ids=[*prompt_ids, *answer_ids],
        labels=[IGNORED_LABEL] * len(prompt_ids) + answer_ids,
        prompt_tokens=len(prompt_ids),
        answer_tokens=len(answer_ids),
        truncated=truncated,
    )


def end_turn(tokenizer: PreTrainedTokenizerBase, answer_ids: list[int]) -> list[int]:
    """The answer up to and including the token that ends the assistant's turn.

    That is the first special token the template writes after the answer (`<|im_end|>` in ChatML);
    whatever follows it (a newline) is not the model's to predict. A template that ends the turn with
    no special token gets the end-of-sequence token, or generation would never stop.
    """
    special = set(tokenizer.all_special_ids)
    for index, token in enumerate(answer_ids):
        if token in special:
            return answer_ids[: index + 1]
    if tokenizer.eos_token_id is None:
        raise InvalidSpec(
            "the chat template ends no turn with a special token and the tokenizer has no EOS token"
        )
    return [*answer_ids, int(tokenizer.eos_token_id)]


def end_of_turn_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token that ends an assistant turn under the tokenizer's template (generation stops there)."""
    probe = [{"role": "user", "content": "ping"}, {"role": "assistant", "content": "pong"}]
    return encode_conversation(tokenizer, probe, max_length=10_000).input_ids[-1]


def _conversations(path: str, fmt: DatasetFormat) -> Iterator[dict[str, Any]]:
    for row in iter_instruction_rows(Path(path), fmt):
        yield {
            "row": row.row,
            "messages": [{"role": message.role, "content": message.content} for message in row.messages],
        }


def conversations_dataset(path: Path, fmt: DatasetFormat, cache_dir: Path) -> Dataset:
    """The file's conversations as an Arrow table under `cache_dir` (written once per file)."""
    dataset = Dataset.from_generator(
        _conversations,
        gen_kwargs={"path": str(path), "fmt": fmt},
        features=CONVERSATION_FEATURES,
        cache_dir=str(cache_dir),
    )
    assert isinstance(dataset, Dataset)
    return dataset


def _encode_batch(
    batch: dict[str, list[Any]], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> dict[str, list[Any]]:
    encoded = [encode_conversation(tokenizer, messages, max_length) for messages in batch["messages"]]
    return {
        "input_ids": [item.input_ids for item in encoded],
        "labels": [item.labels for item in encoded],
        "length": [len(item.input_ids) for item in encoded],
        "prompt_tokens": [item.prompt_tokens for item in encoded],
        "answer_tokens": [item.answer_tokens for item in encoded],
        "truncated": [item.truncated for item in encoded],
    }


ENCODED_FEATURES = Features(
    {
        "row": Value("int64"),
        "input_ids": FeatureSequence(Value("int32")),
        "labels": FeatureSequence(Value("int32")),
        "length": Value("int32"),
        "prompt_tokens": Value("int32"),
        "answer_tokens": Value("int32"),
        "truncated": Value("bool"),
    }
)


def tokenize_conversations(
    conversations: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int, cache_file: Path
) -> Dataset:
    """input_ids, labels and lengths of every conversation, computed in batches and cached on disk."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    return conversations.map(
        _encode_batch,
        batched=True,
        batch_size=256,
        fn_kwargs={"tokenizer": tokenizer, "max_length": max_length},
        remove_columns=["messages"],
        features=ENCODED_FEATURES,
        cache_file_name=str(cache_file),
        load_from_cache_file=True,
        desc=None,
    )


def split_conversations(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """A seeded train/validation split (index mappings over the same memory-mapped table)."""
    parts = dataset.train_test_split(test_size=fraction, seed=seed, shuffle=True)
    return parts["train"], parts["test"]
