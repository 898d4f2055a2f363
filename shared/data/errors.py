"""What can be wrong with an uploaded dataset: one bad row, or the whole file.

A `RowError` is data (it goes into the validation result and the API response); a
`DatasetFileError` is an exception for problems that stop reading the file altogether.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem with one row (or with the whole file when `row` is None).

    `row` is the 1-based data-row number (the header of a CSV file is not a data row). `reason` is a
    full sentence that starts with the row, so it can be shown to a user as it is.
    """

    row: int | None
    field: str | None
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"row": self.row, "field": self.field, "reason": self.reason}


class DatasetFileError(Exception):
    """The file cannot be read as a dataset at all (empty, binary, wrong encoding, corrupt)."""

    def __init__(self, reason: str, row: int | None = None, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.row = row
        self.field = field

    def as_row_error(self) -> RowError:
        return RowError(row=self.row, field=self.field, reason=self.reason)


@dataclass
class ErrorLog:
    """Every row problem is counted; only the first `max_listed` are kept, so memory stays bounded."""

    max_listed: int
    errors: list[RowError] = field(default_factory=list)
    count: int = 0
    # Row numbers of "field is missing" problems per field: a field missing from every row is a
    # missing column, reported once as a file error instead of once per row.
    _missing_listed: dict[str, list[RowError]] = field(default_factory=dict)
    _missing_counts: dict[str, int] = field(default_factory=dict)

    def add(self, row: int, field_name: str | None, reason: str) -> RowError | None:
        """Count the problem; return it when it was listed (None once the list is full)."""
        self.count += 1
        if len(self.errors) >= self.max_listed:
            return None
        error = RowError(row=row, field=field_name, reason=reason)
        self.errors.append(error)
        return error

    def add_missing(self, row: int, field_name: str, reason: str) -> None:
        listed = self.add(row, field_name, reason)
        self._missing_counts[field_name] = self._missing_counts.get(field_name, 0) + 1
        if listed is not None:
            self._missing_listed.setdefault(field_name, []).append(listed)

    def missing_count(self, field_name: str) -> int:
        return self._missing_counts.get(field_name, 0)

    def forget_missing(self, field_name: str) -> None:
        """Drop the per-row "missing" problems of a field that turned out to be a missing column."""
        listed = {id(error) for error in self._missing_listed.pop(field_name, [])}
        self.errors = [error for error in self.errors if id(error) not in listed]
        self.count -= self._missing_counts.pop(field_name, 0)
