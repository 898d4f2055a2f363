"""Text fields that refuse NUL and control characters.

A NUL byte cannot be stored in a Postgres text column (the insert fails, which was a 500), and
control characters in names, paths and URLs only ever mean a mistake or an attack on whatever
prints them (terminal escapes in a log or a table). So every text field of a request refuses them
with a 422 naming the field:

- `Text`: names, ids, paths, URLs, labels: no control character at all (Unicode category Cc,
  which covers NUL, \\x01-\\x1f, DEL and the C1 range), and no unpaired surrogate.
- `MultilineText`: text where line breaks are content (descriptions, prompts, chat messages):
  the same, except that newline, carriage return and tab are allowed.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

MULTILINE_ALLOWED = frozenset("\n\r\t")


def _first_refused(value: str, allowed: frozenset[str]) -> str | None:
    for char in value:
        if char in allowed:
            continue
        category = unicodedata.category(char)
        if category in ("Cc", "Cs"):
            return char
    return None


def check_text(value: str, allowed: frozenset[str] = frozenset()) -> str:
    refused = _first_refused(value, allowed)
    if refused is not None:
        what = "line breaks and tabs are" if allowed else "no control character is"
        raise ValueError(f"contains the control character U+{ord(refused):04X}; {what} allowed here")
    return value


def _single_line(value: str) -> str:
    return check_text(value)


def _multiline(value: str) -> str:
    return check_text(value, MULTILINE_ALLOWED)


Text = Annotated[str, AfterValidator(_single_line)]
MultilineText = Annotated[str, AfterValidator(_multiline)]
