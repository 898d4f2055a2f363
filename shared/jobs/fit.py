"""The data-tokenizer fit of a job's train text, measured the same way at the validate stage and in a
dry run (`shared.data.tokenizer_fit` does the measuring).

A classifier reads each row's text (and its text_pair); a causal LM reads whole conversations
rendered with its chat template, so its tokens, byte fallback and truncation are counted as training
will see them. Both read an evenly spread sample of the rows: files are often sorted by label.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from shared.data.tokenizer_fit import FitThresholds, measure_tokenizer_fit
from shared.jobs.results import TokenizerFit

# Rows the fit is measured on; a larger split is sampled evenly.
FIT_SAMPLE_ROWS = 2000

RowT = TypeVar("RowT")


class TextRow(Protocol):
    @property
    def text(self) -> str: ...

    @property
    def text_pair(self) -> str | None: ...


def every_nth(rows: Sequence[RowT], at_most: int) -> list[RowT]:
    """At most `at_most` rows spread evenly over `rows` (every n-th), in order."""
    step = max(1, math.ceil(len(rows) / at_most))
    return list(rows[::step])


def classification_texts(rows: Iterable[TextRow]) -> Iterator[str]:
    """Each row's text as the classifier reads it (a text_pair follows its text)."""
    for row in rows:
        yield row.text if not row.text_pair else f"{row.text} {row.text_pair}"


def conversation_texts(tokenizer: Any, conversations: Iterable[Sequence[dict[str, str]]]) -> Iterator[str]:
    """Each conversation rendered with the tokenizer's chat template (set beforehand)."""
    for messages in conversations:
        rendered = tokenizer.apply_chat_template(list(messages), tokenize=False)
        yield str(rendered)


def measure_fit(
    texts: Iterable[str],
    tokenizer: Any,
    *,
    base_model: str,
    max_length: int,
    rows_total: int,
    truncation_warning_share: float,
) -> TokenizerFit:
    """The fit of `texts` (already sampled) under `tokenizer`, named by the base model's catalog name.

    `truncation_warning_share` is the stage's own threshold, so the report and the stage agree on
    when truncation is worth a warning.
    """
    report = measure_tokenizer_fit(
        texts,
        tokenizer,
        tokenizer_name=base_model,
        max_length=max_length,
        max_rows=None,
        thresholds=FitThresholds(truncated_share=truncation_warning_share),
    )
    return TokenizerFit.of(report, rows_total=rows_total)


def fit_warnings(fit: TokenizerFit) -> list[str]:
    """The fit's warnings to add to a stage's own, which already say how many rows are cut."""
    return [
        f"{warning.message}: {warning.suggestion}" for warning in fit.warnings if warning.code != "truncation"
    ]
