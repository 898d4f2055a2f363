"""Which columns of an uploaded file hold what: part of a dataset's record and of a job spec."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from shared.text import Text


class ColumnMapping(BaseModel):
    """Which columns of the uploaded file hold the text, the label and the optional second text."""

    model_config = ConfigDict(extra="forbid")

    text: Text = "text"
    label: Text = "label"
    text_pair: Text | None = None
