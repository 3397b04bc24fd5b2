"""A verified token is believed again without verifying, but never past its expiry, and a
token that differs by one character is verified afresh."""

from __future__ import annotations

import time

import pytest

from services.api.auth import TokenVerifier
from taskscheduler.core.errors import Unauthenticated
from taskscheduler.settings import Settings
from taskscheduler.tokens import mint_token

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def verifier() -> TokenVerifier:
    return TokenVerifier(Settings(jwt_secret=SECRET, jwt_leeway_seconds=0))


def metadata(token: str) -> list[tuple[str, str | bytes]]:
    return [("authorization", f"Bearer {token}")]


def test_a_remembered_token_still_expires() -> None:
    tokens = verifier()
    token = mint_token(SECRET, "acme", ttl_seconds=1)
    assert tokens.caller(metadata(token)).tenant == "acme"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            tokens.caller(metadata(token))
        except Unauthenticated as error:
            assert "expired" in str(error)
            return
        time.sleep(0.1)
    pytest.fail("an expired token was still believed")


def test_a_tampered_copy_of_a_remembered_token_is_refused() -> None:
    tokens = verifier()
    token = mint_token(SECRET, "acme")
    tokens.caller(metadata(token))
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(Unauthenticated):
        tokens.caller(metadata(tampered))
