"""Keeping secrets out of log lines and answers.

`Redactor` replaces known secret values (the key pepper, the object store's secret key, the
database password, the bootstrap admin key: whatever the settings hold) and the shapes of secrets
it cannot know in advance: API keys (`tmp_<prefix>_<secret>`: the secret part goes, the prefix
stays so a key can still be told apart), `password=...`/`secret=...` pairs, and the password in a
URL (`scheme://user:pass@host`). `shared.observability` runs it over every log event.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping
from typing import Any

MASK = "***"
_API_KEY = re.compile(r"\b(tmp_[A-Za-z0-9-]{1,16}_)[A-Za-z0-9_-]{8,}")
_URL_CREDENTIALS = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@")
_SECRET_PAIR = re.compile(
    r"(?i)\b((?:password|passwd|pwd|secret|secret_key|api_key|token|pepper)\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&'\"]+)"
)
# Fields whose value is a secret whatever it looks like (not "key": object-store keys are logged).
SECRET_FIELDS = frozenset(
    {"password", "passwd", "secret", "secret_key", "token", "api_key", "pepper", "authorization"}
)
# Short values would mask ordinary words; a real secret is longer than this.
MIN_SECRET_LENGTH = 6


def redact_url(url: str) -> str:
    """The URL with any password replaced by the mask."""
    return _URL_CREDENTIALS.sub(rf"\g<1>{MASK}@", url)


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so that a secret containing another is masked whole.
        self.secrets = sorted(
            {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        value = _API_KEY.sub(rf"\g<1>{MASK}", value)
        value = _URL_CREDENTIALS.sub(rf"\g<1>{MASK}@", value)
        return _SECRET_PAIR.sub(rf"\g<1>{MASK}", value)

    def value(self, value: Any) -> Any:
        """Strings redacted, containers walked; anything else as it is."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                key: MASK if str(key).lower() in SECRET_FIELDS and item else self.value(item)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self.value(item) for item in value)
        return value

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """A structlog processor: run it after format_exc_info, so that tracebacks are redacted too."""
        return self.value(dict(event_dict))
