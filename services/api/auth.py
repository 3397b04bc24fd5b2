"""Authentication of every TaskService call: a bearer JWT verified with keys and algorithms
from configuration (never from the token), giving the caller's tenant and scopes."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from taskscheduler.core.errors import Unauthenticated
from taskscheduler.core.limits import MAX_TOKEN_LENGTH
from taskscheduler.core.model import Caller
from taskscheduler.settings import Settings

TENANT_CLAIM = "tenant"
SCOPE_CLAIM = "scope"  # space-separated (RFC 8693)
VERIFIED_TOKENS_KEPT = 10_000


def _algorithm_of(key: Any) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ES256"
    raise ValueError(f"unsupported public key type {type(key).__name__}")


class TokenVerifier:
    """Verifies tokens; `alg: none`, another algorithm than configured, a bad signature,
    expiry, not-yet-valid, a wrong issuer or audience are all Unauthenticated."""

    def __init__(self, settings: Settings) -> None:
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds
        # A client sends the same token on every call: once verified, it is believed until it
        # expires (verifying costs about 0.3 ms of the api's CPU per call, measured).
        self._verified: dict[str, tuple[Caller, float]] = {}
        self._keys: dict[str | None, tuple[Any, str]] = {}  # kid -> (key, algorithm)
        if settings.jwt_secret:
            self._keys[None] = (settings.jwt_secret, "HS256")
        elif settings.jwt_public_key_file:
            key = serialization.load_pem_public_key(settings.jwt_public_key_file.read_bytes())
            self._keys[None] = (key, _algorithm_of(key))
        elif settings.jwt_jwks_file:
            for jwk in jwt.PyJWKSet.from_dict(json.loads(settings.jwt_jwks_file.read_text())).keys:
                self._keys[jwk.key_id] = (jwk.key, _algorithm_of(jwk.key))
        if not self._keys:
            raise ValueError(
                "authentication needs TASKSCHED_JWT_SECRET, TASKSCHED_JWT_PUBLIC_KEY_FILE or "
                "TASKSCHED_JWT_JWKS_FILE"
            )

    def caller(self, metadata: Sequence[tuple[str, str | bytes]]) -> Caller:
        token = _bearer_token(metadata)
        remembered = self._verified.get(token)
        if remembered is not None and time.time() < remembered[1]:
            return remembered[0]
        caller, expires = self._caller_of(token)
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            self._verified.clear()
        self._verified[token] = (caller, expires)
        return caller

    def _caller_of(self, token: str) -> tuple[Caller, float]:
        """The caller a token names, and until when it may be believed without checking again
        (its expiry, with the leeway)."""
        claims = self._verify(token)
        tenant = claims.get(TENANT_CLAIM)
        if not isinstance(tenant, str) or not tenant or len(tenant) > 200 or "\x00" in tenant:
            raise Unauthenticated(f"the token carries no valid `{TENANT_CLAIM}` claim")
        scope = claims.get(SCOPE_CLAIM, "")
        scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        return Caller(tenant=tenant, scopes=scopes), float(claims["exp"]) + self._leeway

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key, algorithm = self._keys.get(kid) or self._keys.get(None) or (None, "")
            if key is None:
                raise Unauthenticated("the token is signed with an unknown key")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={
                    "require": ["exp", *(["iss"] if self._issuer else [])],
                    "verify_aud": self._audience is not None,
                },
            )
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"invalid token: {_reason(error)}") from None
        return claims


def _bearer_token(metadata: Sequence[tuple[str, str | bytes]]) -> str:
    for key, value in metadata:
        if key != "authorization" or not isinstance(value, str):
            continue
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the authorization header must be `Bearer <token>`")
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("the token is too long")
        return token.strip()
    raise Unauthenticated("missing credentials: send `authorization: Bearer <token>`")


def _reason(error: jwt.PyJWTError) -> str:
    """A short cause that names no secret and echoes no token."""
    reasons = {
        jwt.ExpiredSignatureError: "expired",
        jwt.ImmatureSignatureError: "not valid yet",
        jwt.InvalidIssuerError: "wrong issuer",
        jwt.InvalidAudienceError: "wrong audience",
        jwt.InvalidSignatureError: "bad signature",
        jwt.InvalidAlgorithmError: "algorithm not allowed",
        jwt.MissingRequiredClaimError: "a required claim is missing",
        jwt.DecodeError: "malformed",
    }
    for error_type, reason in reasons.items():
        if isinstance(error, error_type):
            return reason
    return "rejected"
