"""The dataset report: counts, label distribution, lengths, duplicates and train/test overlap.

The profiles below are fed one valid row at a time during validation and keep only numbers: per
row a row number, a label id, two lengths and two 16-byte digests (exact text, normalized text).
Texts are never kept, so a million-row upload costs tens of megabytes, not the file's size.
Every statistic is computed with numpy/pandas at the end; the report is a JSON-able dict.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Protocol

import numpy as np
import pandas as pd

DIGEST_BYTES = 16
PERCENTILES = (50, 90, 95, 99)
# How many duplicate groups / overlapping pairs a report lists as examples.
MAX_EXAMPLES = 5
# Row numbers shown per example group.
MAX_ROWS_PER_EXAMPLE = 5
# Joins a text and its text_pair before hashing; a control character that does not occur in prose.
_PAIR_SEPARATOR = "\x1f"
# Words are what whitespace separates, except in scripts written without spaces. Chinese and
# Japanese ideographs and kana count one word per character (the usual length unit there), so a
# Chinese row is not "one word"; Thai, Lao, Myanmar and Khmer rows get no word count at all
# (WORD_COUNT_SKIPPED): splitting them needs a dictionary, and a count of 1 would mislead.
_CJK_CHARACTER = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_UNSPACED_SCRIPT = re.compile("[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff]")
_WITHOUT_SPACES = re.compile(f"{_CJK_CHARACTER.pattern}|{_UNSPACED_SCRIPT.pattern}")
WORD_COUNT_SKIPPED = -1


def normalize_text(text: str) -> str:
    """The form under which two texts count as "the same" for conflicting duplicates.

    NFKC folds full-width and compatibility characters, casefold ignores case, and runs of
    whitespace collapse, so "Refund  please" and "refund please" are one text.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    # Fast path without a string per word: isprintable() is False for every whitespace character
    # except the ASCII space, so such a text only needs its double and outer spaces checked.
    if folded.isprintable() and "  " not in folded and folded[:1] != " " and folded[-1:] != " ":
        return folded
    return " ".join(folded.split())


def text_digest(text: str, text_pair: str | None = None) -> bytes:
    joined = text if text_pair is None else f"{text}{_PAIR_SEPARATOR}{text_pair}"
    return hashlib.blake2b(joined.encode("utf-8"), digest_size=DIGEST_BYTES).digest()


def length_stats(lengths: np.ndarray) -> dict[str, float | int | None]:
    """p50/p90/p95/p99/max and mean of a length array (None everywhere when it is empty)."""
    keys = [f"p{p}" for p in PERCENTILES]
    if lengths.size == 0:
        return dict.fromkeys([*keys, "max", "mean"])
    values = np.percentile(lengths, PERCENTILES)
    stats: dict[str, float | int | None] = {
        key: round(float(v), 1) for key, v in zip(keys, values, strict=True)
    }
    stats["max"] = int(lengths.max())
    stats["mean"] = round(float(lengths.mean()), 1)
    return stats


def word_count(text: str) -> int:
    """Words of a text (see _CJK_CHARACTER above); WORD_COUNT_SKIPPED for an unspaced script."""
    if _WITHOUT_SPACES.search(text) is None:
        return len(text.split())
    return _word_count_without_spaces(text)


def _word_count_without_spaces(text: str) -> int:
    if _UNSPACED_SCRIPT.search(text) is not None:
        return WORD_COUNT_SKIPPED
    ideographs = len(_CJK_CHARACTER.findall(text))
    # What is left between them: Latin words, numbers; a run of punctuation alone is no word.
    others = _CJK_CHARACTER.sub(" ", text).split()
    return ideographs + sum(1 for fragment in others if any(char.isalnum() for char in fragment))


def word_length_stats(words: array) -> dict[str, float | int | None]:
    """Percentiles of word counts, leaving out rows whose script got none."""
    counts = _int32(words)
    return length_stats(counts[counts != WORD_COUNT_SKIPPED])


@dataclass(frozen=True)
class TextDigests:
    """Row numbers and exact-text digests of a dataset: all `dataset_overlap` needs from it."""

    rows: np.ndarray  # int32, 1-based data-row numbers
    digests: np.ndarray  # (n, 2) uint64, the 16-byte digest viewed as two integers

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> TextDigests:
        """Digests of plain texts, numbered 1, 2, ... in order."""
        buffer = bytearray()
        for text in texts:
            buffer += text_digest(text)
        digests = _digest_matrix(buffer)
        return cls(rows=np.arange(1, len(digests) + 1, dtype=np.int32), digests=digests)

    def __len__(self) -> int:
        return len(self.rows)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"h0": self.digests[:, 0], "h1": self.digests[:, 1], "row": self.rows})


def _int32(values: array) -> np.ndarray:
    # A copy, not a view: a live view would stop the array from growing any further.
    return np.array(values, dtype=np.int32)


def _digest_matrix(buffer: bytearray | bytes) -> np.ndarray:
    return np.frombuffer(bytes(buffer), dtype=np.uint64).reshape(-1, 2)


def _first_groups(frame: pd.DataFrame) -> tuple[int, list[pd.DataFrame]]:
    """How many digest groups `frame` holds, and the first `MAX_EXAMPLES` of them in file order.

    Only the example groups are materialized: a file with a hundred thousand duplicate groups
    would otherwise build a hundred thousand small frames to show five.
    """
    if frame.empty:
        return 0, []
    group_numbers = frame.groupby(["h0", "h1"], sort=False).ngroup()
    shown = group_numbers < MAX_EXAMPLES
    examples = frame[shown].groupby(group_numbers[shown], sort=True)
    return int(group_numbers.max()) + 1, [group for _, group in examples]


class _RowDigests:
    """Growing per-row columns shared by the classification and instruction profiles."""

    def __init__(self) -> None:
        self.rows = array("i")
        self.chars = array("i")
        self.words = array("i")
        self.exact = bytearray()
        self.normalized = bytearray()

    def add(self, row: int, text: str, exact_digest: bytes, normalized_text: str) -> None:
        self.rows.append(row)
        self.chars.append(len(text))
        # Counted on the normalized text, whose whitespace runs are already single spaces: this
        # avoids allocating one string per word (text.split()), which dominates on long texts.
        if _WITHOUT_SPACES.search(normalized_text) is None:
            self.words.append(normalized_text.count(" ") + 1 if normalized_text else 0)
        else:
            self.words.append(_word_count_without_spaces(normalized_text))
        self.exact += exact_digest
        self.normalized += hashlib.blake2b(normalized_text.encode("utf-8"), digest_size=DIGEST_BYTES).digest()

    def __len__(self) -> int:
        return len(self.rows)

    def text_digests(self) -> TextDigests:
        return TextDigests(rows=_int32(self.rows), digests=_digest_matrix(self.exact))

    def lengths_report(self) -> dict[str, object]:
        return {
            "chars": length_stats(_int32(self.chars)),
            "words": word_length_stats(self.words),
            # Rows in a script written without spaces (Thai, Lao, Myanmar, Khmer): no word count.
            "words_skipped_rows": int((_int32(self.words) == WORD_COUNT_SKIPPED).sum()),
        }

    def exact_duplicates(self) -> dict[str, object]:
        """Rows whose exact text repeats an earlier row's; `rows` counts the repeats only."""
        frame = self.text_digests().frame()
        repeated = frame.duplicated(["h0", "h1"], keep="first")
        group_count, example_groups = _first_groups(frame[frame.duplicated(["h0", "h1"], keep=False)])
        examples = [[int(r) for r in group["row"].iloc[:MAX_ROWS_PER_EXAMPLE]] for group in example_groups]
        return {"rows": int(repeated.sum()), "groups": group_count, "examples": examples}

    def normalized_frame(self) -> pd.DataFrame:
        digests = _digest_matrix(self.normalized)
        return pd.DataFrame({"h0": digests[:, 0], "h1": digests[:, 1], "row": _int32(self.rows)})


class ClassificationProfile:
    """Accumulates what the report needs from each valid classification row."""

    def __init__(self) -> None:
        self._columns = _RowDigests()
        self._label_ids = array("i")
        self._label_index: dict[str, int] = {}

    def add(self, row: int, text: str, label: str, text_pair: str | None = None) -> None:
        # Lengths are of the model input: the text and its pair together.
        full_text = text if text_pair is None else f"{text} {text_pair}"
        self._columns.add(row, full_text, text_digest(text, text_pair), normalize_text(full_text))
        self._label_ids.append(self._label_index.setdefault(label, len(self._label_index)))

    def __len__(self) -> int:
        return len(self._columns)

    @property
    def labels(self) -> list[str]:
        return sorted(self._label_index)

    @property
    def class_count(self) -> int:
        return len(self._label_index)

    def text_digests(self) -> TextDigests:
        return self._columns.text_digests()

    def report(self) -> dict[str, object]:
        return {
            "labels": self._label_distribution(),
            "lengths": self._columns.lengths_report(),
            "duplicates": {
                "exact": self._columns.exact_duplicates(),
                "conflicting": self._conflicting_duplicates(),
            },
        }

    def _label_distribution(self) -> dict[str, object]:
        counts = np.bincount(_int32(self._label_ids), minlength=len(self._label_index))
        frame = pd.DataFrame({"label": list(self._label_index), "count": counts})
        # Most frequent first; ties by name so the report is stable.
        frame = frame.sort_values(["count", "label"], ascending=[False, True], kind="stable")
        total = int(frame["count"].sum())
        classes = [
            {"label": str(label), "count": int(count), "share": round(count / total, 4)}
            for label, count in zip(frame["label"], frame["count"], strict=True)
        ]
        return {
            "class_count": len(classes),
            "classes": classes,
            "majority_share": classes[0]["share"] if classes else None,
            # max/min class count: how far the data is from balanced (1.0 is balanced).
            "imbalance_ratio": round(classes[0]["count"] / classes[-1]["count"], 2) if classes else None,
        }

    def _conflicting_duplicates(self) -> dict[str, object]:
        """Groups of rows with the same normalized text but different labels."""
        frame = self._columns.normalized_frame()
        # Label ids, not names: grouping an int32 column costs a fraction of an object column.
        frame["label_id"] = _int32(self._label_ids)
        # Only texts that occur more than once can conflict; most rows drop out before grouping.
        repeated = frame[frame.duplicated(["h0", "h1"], keep=False)]
        distinct_labels = repeated.groupby(["h0", "h1"], sort=False)["label_id"].transform("nunique")
        conflicting = repeated[distinct_labels > 1]
        group_count, example_groups = _first_groups(conflicting)
        names_by_id = list(self._label_index)
        examples = [
            {
                "rows": [int(r) for r in group["row"].iloc[:MAX_ROWS_PER_EXAMPLE]],
                "labels": sorted(names_by_id[label_id] for label_id in group["label_id"].unique()),
            }
            for group in example_groups
        ]
        return {"rows": len(conflicting), "groups": group_count, "examples": examples}


class InstructionProfile:
    """Accumulates what the report needs from each valid instruction (Alpaca or chat) row."""

    def __init__(self) -> None:
        self._prompts = _RowDigests()
        self._response_chars = array("i")
        self._response_words = array("i")
        self._style_counts: dict[str, int] = {}
        self._messages_per_row: dict[int, int] = {}
        self._role_counts: dict[str, int] = {}

    def add(self, row: int, prompt: str, response: str, style: str, roles: Sequence[str] = ()) -> None:
        """`prompt` is everything before the final answer; `response` is the answer; `roles` are the
        roles of the row's messages in order (user, assistant, ... for chat rows)."""
        whole = f"{prompt}{_PAIR_SEPARATOR}{response}"
        self._prompts.add(row, prompt, text_digest(whole), normalize_text(whole))
        self._response_chars.append(len(response))
        self._response_words.append(word_count(response))
        self._style_counts[style] = self._style_counts.get(style, 0) + 1
        self._messages_per_row[len(roles)] = self._messages_per_row.get(len(roles), 0) + 1
        for role in roles:
            self._role_counts[role] = self._role_counts.get(role, 0) + 1

    def __len__(self) -> int:
        return len(self._prompts)

    def text_digests(self) -> TextDigests:
        return self._prompts.text_digests()

    def report(self) -> dict[str, object]:
        return {
            "styles": dict(sorted(self._style_counts.items())),
            # How many messages a row holds (2 = one question, one answer), and messages per role.
            "turns": {str(count): rows for count, rows in sorted(self._messages_per_row.items())},
            "roles": dict(sorted(self._role_counts.items())),
            "lengths": {
                "prompt": self._prompts.lengths_report(),
                "response": {
                    "chars": length_stats(_int32(self._response_chars)),
                    "words": word_length_stats(self._response_words),
                },
            },
            "duplicates": {"exact": self._prompts.exact_duplicates()},
        }


class _TextRow(Protocol):
    @property
    def row(self) -> int: ...

    @property
    def text(self) -> str: ...


def dataset_overlap(
    a: TextDigests | Iterable[str] | Iterable[_TextRow],
    b: TextDigests | Iterable[str] | Iterable[_TextRow],
) -> dict[str, object]:
    """Exact-text overlap between two datasets, seen from `b` (typically a = train, b = test).

    Each side is the `TextDigests` of a validation result, or rows/texts to hash here. `rows` counts
    rows of `b` whose text occurs in `a`; `share` is that over the size of `b`.
    """
    a_frame = _as_digests(a).frame().drop_duplicates(["h0", "h1"], keep="first")
    b_frame = _as_digests(b).frame()
    matches = b_frame.merge(a_frame, on=["h0", "h1"], suffixes=("_b", "_a"))
    examples = [
        {"a_row": int(a_row), "b_row": int(b_row)}
        for a_row, b_row in zip(
            matches["row_a"].iloc[:MAX_EXAMPLES], matches["row_b"].iloc[:MAX_EXAMPLES], strict=True
        )
    ]
    return {
        "rows": len(matches),
        "share": round(len(matches) / len(b_frame), 4) if len(b_frame) else 0.0,
        "distinct_texts": int(matches[["h0", "h1"]].drop_duplicates().shape[0]),
        "examples": examples,
    }


def _as_digests(side: TextDigests | Iterable[str] | Iterable[_TextRow]) -> TextDigests:
    if isinstance(side, TextDigests):
        return side
    items: list[str | _TextRow] = list(side)
    texts = [item for item in items if isinstance(item, str)]
    if len(texts) == len(items):
        return TextDigests.from_texts(texts)
    rows_of = [item for item in items if not isinstance(item, str)]
    buffer = bytearray()
    for item in rows_of:
        buffer += text_digest(item.text, getattr(item, "text_pair", None))
    rows = np.array([item.row for item in rows_of], dtype=np.int32)
    return TextDigests(rows=rows, digests=_digest_matrix(buffer))


def token_length_stats(
    texts: Iterable[str] | Sequence[str],
    tokenizer,
    max_length: int | None = None,
    batch_size: int = 512,
    pairs: Iterable[str | None] | None = None,
) -> dict[str, object]:
    """Token-length percentiles of `texts` under the base model's tokenizer (special tokens included).

    `pairs` gives each text its second segment (a `text_pair` column), encoded together as the model
    sees them. With `max_length` (the job's max_seq_length) it also says how many rows would be cut.
    """
    lengths: list[int] = []
    batch: list[tuple[str, str | None]] = []
    for text, pair in zip(texts, pairs if pairs is not None else repeat(None), strict=False):
        batch.append((text, pair))
        if len(batch) == batch_size:
            lengths.extend(_token_counts(tokenizer, batch))
            batch = []
    if batch:
        lengths.extend(_token_counts(tokenizer, batch))
    token_lengths = np.asarray(lengths, dtype=np.int32)
    stats: dict[str, object] = {"tokens": length_stats(token_lengths)}
    if max_length is not None:
        truncated = int((token_lengths > max_length).sum())
        stats["max_length"] = max_length
        stats["truncated_rows"] = truncated
        stats["truncated_share"] = round(truncated / len(token_lengths), 4) if len(token_lengths) else 0.0
    return stats


def _token_counts(tokenizer, batch: list[tuple[str, str | None]]) -> list[int]:
    texts = [text for text, _ in batch]
    pairs = [pair for _, pair in batch]
    encoded = tokenizer(
        texts,
        pairs if any(pair is not None for pair in pairs) else None,
        add_special_tokens=True,
        truncation=False,
        verbose=False,
    )
    return [len(ids) for ids in encoded["input_ids"]]
