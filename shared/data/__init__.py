"""Dataset handling before any GPU time: read (formats), check (validation, instructions), describe (report).

Errors a user must see are `RowError` data or a `DatasetFileError`; see `shared.data.errors`.
"""
