"""How well a base model's tokenizer fits a dataset's text, measured before any GPU time.

A tokenizer built for English meets Chinese rows in one of two ways: a WordPiece vocabulary (BERT,
MiniLM) turns every character it lacks into the unknown token, so the model sees "[UNK] [UNK] ..."
and cannot learn; a byte-level BPE or a SentencePiece model with byte fallback never produces an
unknown token but spells such characters out byte by byte, so sequences grow several times longer
and get cut at max_length. This module measures both, the Unicode scripts of the text, and the
share of rows that max_length would cut, and turns what is over a threshold into a warning with
a suggestion a user can act on.

It reads a sample (`max_rows`) of an iterator of texts, and needs a Hugging Face tokenizer; the
byte-fallback measure and the scripts behind unknown tokens need a fast one (character offsets).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from itertools import islice
from typing import Any, Literal

import numpy as np

from shared.data.report import length_stats

WarningCode = Literal["unknown_tokens", "byte_fallback", "truncation"]

# Languages to name in a suggestion, by the script that needs covering.
LANGUAGE_OF_SCRIPT = {
    "Han": "Chinese",
    "Hiragana": "Japanese",
    "Katakana": "Japanese",
    "Hangul": "Korean",
    "Arabic": "Arabic",
    "Hebrew": "Hebrew",
    "Thai": "Thai",
    "Devanagari": "Hindi",
    "Greek": "Greek",
    "Cyrillic": "Cyrillic-script languages (Russian, Ukrainian, ...)",
}
# Unicode names whose first word is not the script: "CJK UNIFIED IDEOGRAPH-4E2D",
# "FULLWIDTH LATIN SMALL LETTER A", "HALFWIDTH KATAKANA LETTER A".
_NAME_PREFIX_SCRIPT = {"CJK": "Han"}
_WIDTH_PREFIXES = ("FULLWIDTH", "HALFWIDTH")


@dataclass(frozen=True)
class FitThresholds:
    """Above these shares a measure becomes a warning."""

    unknown_share: float = 0.02
    byte_fallback_share: float = 0.25
    truncated_share: float = 0.05


@dataclass(frozen=True)
class ScriptShare:
    script: str
    letters: int
    share: float


@dataclass(frozen=True)
class FitWarning:
    code: WarningCode
    message: str
    suggestion: str
    value: float
    threshold: float

    def __str__(self) -> str:
        return f"{self.message}: {self.suggestion}"


@dataclass(frozen=True)
class TokenizerFitReport:
    tokenizer: str
    rows: int
    characters: int
    tokens: int
    tokens_per_character: float
    unknown_tokens: int
    unknown_share: float
    # None when the tokenizer gives no character offsets (a slow tokenizer).
    byte_fallback_share: float | None
    scripts: list[ScriptShare]
    unknown_scripts: list[ScriptShare]
    token_lengths: dict[str, float | int | None]
    max_length: int | None
    truncated_rows: int
    truncated_share: float
    warnings: list[FitWarning] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_tokenizer_fit(
    texts: Iterable[str],
    tokenizer: Any,
    *,
    tokenizer_name: str,
    max_length: int | None = None,
    max_rows: int | None = 2000,
    batch_size: int = 256,
    thresholds: FitThresholds = FitThresholds(),
) -> TokenizerFitReport:
    """Measure `tokenizer` on the first `max_rows` texts (all of them with None).

    `tokenizer_name` is how warnings name it (the base model's name in the catalog).
    Token counts leave special tokens out; row lengths for truncation include them, as the model
    sees the row.
    """
    tally = _Tally(tokenizer)
    rows: Iterator[str] = iter(texts) if max_rows is None else islice(texts, max_rows)
    while batch := list(islice(rows, batch_size)):
        tally.add(batch)

    lengths = np.asarray(tally.row_lengths, dtype=np.int32)
    truncated = int((lengths > max_length).sum()) if max_length is not None else 0
    row_count = len(tally.row_lengths)
    report = TokenizerFitReport(
        tokenizer=tokenizer_name,
        rows=row_count,
        characters=tally.characters,
        tokens=tally.tokens,
        tokens_per_character=_ratio(tally.tokens, tally.characters, digits=3),
        unknown_tokens=tally.unknown,
        unknown_share=_ratio(tally.unknown, tally.tokens),
        byte_fallback_share=_ratio(tally.fallback_bytes, tally.text_bytes) if tally.has_offsets else None,
        scripts=_shares(tally.scripts),
        unknown_scripts=_shares(tally.unknown_scripts),
        token_lengths=length_stats(lengths),
        max_length=max_length,
        truncated_rows=truncated,
        truncated_share=_ratio(truncated, row_count),
    )
    report.warnings.extend(_warnings(report, tokenizer, thresholds))
    return report


class _Tally:
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.unknown_id: int | None = tokenizer.unk_token_id
        self.has_offsets = bool(getattr(tokenizer, "is_fast", False))
        self.special_tokens = int(tokenizer.num_special_tokens_to_add(pair=False))
        self.characters = 0
        self.text_bytes = 0
        self.fallback_bytes = 0
        self.tokens = 0
        self.unknown = 0
        self.row_lengths: list[int] = []
        self.scripts: Counter[str] = Counter()
        self.unknown_scripts: Counter[str] = Counter()

    def add(self, texts: Sequence[str]) -> None:
        encoded = self.tokenizer(
            list(texts),
            add_special_tokens=False,
            truncation=False,
            return_offsets_mapping=self.has_offsets,
            verbose=False,
        )
        for index, text in enumerate(texts):
            ids: list[int] = encoded["input_ids"][index]
            self.characters += len(text)
            self.text_bytes += len(text.encode("utf-8"))
            self.tokens += len(ids)
            self.row_lengths.append(len(ids) + self.special_tokens)
            self.scripts.update(_letter_scripts(text))
            unknown_positions = [p for p, token in enumerate(ids) if token == self.unknown_id]
            self.unknown += len(unknown_positions)
            if not self.has_offsets:
                continue
            offsets: list[tuple[int, int]] = encoded["offset_mapping"][index]
            for position in unknown_positions:
                start, end = offsets[position]
                self.unknown_scripts.update(_letter_scripts(text[start:end]))
            self.fallback_bytes += _split_character_bytes(text, offsets)


def _split_character_bytes(text: str, offsets: Sequence[tuple[int, int]]) -> int:
    """UTF-8 bytes of the characters that two or more tokens share: those spelled out in bytes.

    A byte-level BPE splits a character missing from its merges into one token per byte (or a few
    byte pairs), and each of those tokens reports the whole character as its span; SentencePiece's
    byte fallback does the same with its <0xNN> tokens. A character covered by one token is whole.
    """
    coverage = np.zeros(len(text) + 1, dtype=np.int32)
    for start, end in offsets:
        if end > start:
            coverage[start] += 1
            coverage[end] -= 1
    covered = np.cumsum(coverage[:-1])
    return sum(len(text[index].encode("utf-8")) for index in np.flatnonzero(covered > 1))


def _letter_scripts(text: str) -> Counter[str]:
    """How many letters of each script the text has (digits, punctuation and spaces are in none)."""
    return Counter(script for char in text if (script := script_of(char)) is not None)


@lru_cache(maxsize=65536)
def script_of(char: str) -> str | None:
    """The Unicode script of a letter, from its character name ("CYRILLIC SMALL LETTER A" → Cyrillic)."""
    if not unicodedata.category(char).startswith("L"):
        return None
    words = unicodedata.name(char, "").split()
    if not words:
        return None
    if words[0] in _WIDTH_PREFIXES and len(words) > 1:
        words = words[1:]
    return _NAME_PREFIX_SCRIPT.get(words[0], words[0].capitalize())


def _shares(counts: Counter[str]) -> list[ScriptShare]:
    total = sum(counts.values())
    return [
        ScriptShare(script=script, letters=letters, share=_ratio(letters, total))
        for script, letters in counts.most_common()
    ]


def _ratio(part: int, whole: int, digits: int = 4) -> float:
    return round(part / whole, digits) if whole else 0.0


def _language_to_cover(scripts: list[ScriptShare]) -> str:
    """What a better tokenizer must cover: the script behind the problem, named as a language."""
    non_latin = [entry.script for entry in scripts if entry.script != "Latin"]
    if not non_latin:
        return "this text"
    first = non_latin[0]
    if first == "Han" and {"Hiragana", "Katakana"} & set(non_latin):
        return "Japanese"
    return LANGUAGE_OF_SCRIPT.get(first, f"{first}-script text")


def _warnings(report: TokenizerFitReport, tokenizer: Any, thresholds: FitThresholds) -> Iterator[FitWarning]:
    name = report.tokenizer
    if report.unknown_share > thresholds.unknown_share:
        unknown_token = getattr(tokenizer, "unk_token", None) or "the unknown token"
        language = _language_to_cover(report.unknown_scripts or report.scripts)
        yield FitWarning(
            code="unknown_tokens",
            message=f"{report.unknown_share:.0%} of tokens are {unknown_token} under {name}'s vocabulary",
            suggestion=f"choose a base model whose tokenizer covers {language}",
            value=report.unknown_share,
            threshold=thresholds.unknown_share,
        )
    if report.byte_fallback_share is not None and report.byte_fallback_share > thresholds.byte_fallback_share:
        yield FitWarning(
            code="byte_fallback",
            message=(
                f"{report.byte_fallback_share:.0%} of the text's bytes are spelled out byte by byte under "
                f"{name}'s vocabulary ({report.tokens_per_character:.2f} tokens per character)"
            ),
            suggestion=(
                f"choose a base model whose tokenizer covers {_language_to_cover(report.scripts)}, "
                "or expect longer sequences, more truncation and weaker results"
            ),
            value=report.byte_fallback_share,
            threshold=thresholds.byte_fallback_share,
        )
    if report.max_length is not None and report.truncated_share > thresholds.truncated_share:
        p95 = report.token_lengths.get("p95")
        yield FitWarning(
            code="truncation",
            message=(
                f"{report.truncated_share:.0%} of rows are longer than max_length {report.max_length} "
                f"tokens under {name} and would be cut"
            ),
            suggestion=f"raise max_seq_length to about {int(p95 or 0)} (the 95th percentile), or shorten the rows",
            value=report.truncated_share,
            threshold=thresholds.truncated_share,
        )
