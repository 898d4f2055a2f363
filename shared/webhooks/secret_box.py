"""Webhook signing secrets, encrypted at rest under key-encryption keys from the settings.

A delivery must be signed with the endpoint's secret itself, so the secret cannot be stored as a
hash like an API key; stored in the clear, a copy of the database (a backup, a read replica, a leaked
dump) would be enough to forge Temper's signatures. Each secret is encrypted with Fernet (AES-128-CBC
and HMAC-SHA256, from the `cryptography` package) under a key derived from one of
TEMPER_WEBHOOK_SECRET_KEYS, and stored as

    fernet:<key id>:<Fernet token>

The key id (the first 8 hex digits of SHA-256 over the derived key) names the key that encrypted the
row, so that the keys can be rotated: put a new key first in the list and keep the old ones after it;
new and re-encrypted secrets use the first key, rows under an older key still decrypt, and
`temper db reencrypt-webhook-secrets` (or the next delivery to the endpoint) moves them to the newest.
Once no row names an old key id it can be removed from the list (deploy/README.md, "Security").

The configured keys are any high-entropy strings (`openssl rand -base64 32`); HKDF-SHA256 turns each
into a Fernet key, so an operator never has to produce Fernet's exact key format.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.settings import Settings

SCHEME = "fernet"
_HKDF_INFO = b"temper webhook signing secrets v1"


class SecretUnreadable(Exception):
    """A stored secret that no configured key opens (its key was removed, or the row was altered)."""


@dataclass(frozen=True)
class _Key:
    key_id: str
    fernet: Fernet


def _derive(configured: str) -> _Key:
    material = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        configured.encode()
    )
    return _Key(
        key_id=hashlib.sha256(material).hexdigest()[:8], fernet=Fernet(base64.urlsafe_b64encode(material))
    )


class SecretBox:
    """Encrypts with the newest key, decrypts with whichever key a row names."""

    def __init__(self, configured_keys: list[str]) -> None:
        if not configured_keys:
            raise ValueError("at least one webhook secret key is needed (TEMPER_WEBHOOK_SECRET_KEYS)")
        self._keys = [_derive(key) for key in configured_keys]
        self._by_id = {key.key_id: key for key in reversed(self._keys)}

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        return cls([key.get_secret_value() for key in settings.webhook_secret_keys])

    @property
    def current_key_id(self) -> str:
        return self._keys[0].key_id

    def encrypt(self, secret: str) -> str:
        key = self._keys[0]
        return f"{SCHEME}:{key.key_id}:{key.fernet.encrypt(secret.encode()).decode()}"

    def decrypt(self, stored: str) -> str:
        scheme, key_id, token = _parts(stored)
        key = self._by_id.get(key_id)
        if scheme != SCHEME or key is None:
            raise SecretUnreadable(
                f"the webhook secret is encrypted with key id {key_id!r}, which TEMPER_WEBHOOK_SECRET_KEYS "
                "no longer holds; put that key back (after the newest) and re-encrypt"
            )
        try:
            return key.fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretUnreadable(f"the webhook secret under key id {key_id!r} does not decrypt") from exc

    def is_current(self, stored: str) -> bool:
        """Whether the row is already under the newest key (nothing to re-encrypt)."""
        return _parts(stored)[1] == self.current_key_id

    def reencrypt(self, stored: str) -> str:
        return stored if self.is_current(stored) else self.encrypt(self.decrypt(stored))


def _parts(stored: str) -> tuple[str, str, str]:
    scheme, _, rest = stored.partition(":")
    key_id, _, token = rest.partition(":")
    return scheme, key_id, token
