"""The signature header the server writes is the one the SDK's `verify_signature` checks: HMAC-SHA256
of "<t>.<raw body>" under the endpoint's secret, refused when the body, the secret or the time is
off."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from shared.webhooks.signing import SECRET_PREFIX, new_secret, signature_header
from temper_client import InvalidSignature, verify_signature

BODY = b'{"id":"e1","type":"job.succeeded"}'
NOW = 1_800_000_000


def test_the_header_is_the_documented_hmac_and_the_sdk_accepts_it() -> None:
    secret = new_secret()
    header = signature_header(secret, NOW, BODY)

    expected = hmac.new(secret.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"
    verify_signature(secret, header, BODY, now=NOW + 10)


@pytest.mark.parametrize(
    ("secret", "body", "now", "reason"),
    [
        ("whsec_other", BODY, NOW, "no v1 signature matches"),
        (None, BODY + b" ", NOW, "no v1 signature matches"),
        (None, BODY, NOW + 301, "more than 300 s from now"),
    ],
)
def test_a_changed_body_another_secret_or_an_old_signature_is_refused(
    secret: str | None, body: bytes, now: int, reason: str
) -> None:
    signing_secret = new_secret()
    header = signature_header(signing_secret, NOW, BODY)
    with pytest.raises(InvalidSignature, match=reason):
        verify_signature(secret or signing_secret, header, body, now=now)


def test_any_of_several_v1_signatures_may_match_and_a_header_without_time_is_refused() -> None:
    secret = new_secret()
    header = signature_header(secret, NOW, BODY)
    verify_signature(secret, f"{header},v1={'0' * 64}", BODY, now=NOW)
    with pytest.raises(InvalidSignature, match="no t="):
        verify_signature(secret, header.split(",", 1)[1], BODY, now=NOW)
    assert secret.startswith(SECRET_PREFIX) and len(secret) > 40 and new_secret() != secret
