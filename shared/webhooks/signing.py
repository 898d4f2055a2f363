"""The signature every delivery carries, so that a receiver can tell it came from Temper, unchanged.

    Temper-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

`t` is when the attempt was signed (each retry signs again); a receiver recomputes the HMAC over
the timestamp, a dot and the raw body bytes, compares in constant time, and refuses a timestamp
too far from its clock, so that a captured delivery cannot be replayed later.
`temper_client.webhooks.verify_signature` does exactly that.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "Temper-Signature"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"
