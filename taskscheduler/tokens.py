"""Minting bearer tokens (HS256) for development, tests and tools; the api only verifies."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path

import jwt

from taskscheduler.core.model import READ_SCOPE, WRITE_SCOPE

ALL_SCOPES = (READ_SCOPE, WRITE_SCOPE)


def mint_token(
    secret: str,
    tenant: str,
    scopes: Iterable[str] = ALL_SCOPES,
    ttl_seconds: float = 3600,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": f"{tenant}-client",
        "tenant": tenant,
        "scope": " ".join(scopes),
        "iat": now,
        "exp": now + int(ttl_seconds),
    }
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")


def development_secret(data_dir: Path) -> str:
    """The secret `make run` uses when TASKSCHED_JWT_SECRET is unset: made once, kept in
    data_dir (readable by its owner only)."""
    path = data_dir / "jwt_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def configured_secret() -> str:
    """TASKSCHED_JWT_SECRET, else the development secret of `make run` (under .data/, or
    TASKSCHED_DATA_DIR)."""
    return os.environ.get("TASKSCHED_JWT_SECRET") or development_secret(
        Path(os.environ.get("TASKSCHED_DATA_DIR", ".data"))
    )


def main() -> None:
    """`python -m taskscheduler.tokens --tenant acme [--scope tasks:read] [--ttl 3600]`: prints a
    token signed with TASKSCHED_JWT_SECRET, or with the development secret under .data/."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--tenant", default="dev")
    parser.add_argument("--scope", action="append", help="repeat; default: read and write")
    parser.add_argument("--ttl", type=float, default=86_400, help="seconds")
    args = parser.parse_args()
    print(mint_token(configured_secret(), args.tenant, args.scope or ALL_SCOPES, args.ttl))


if __name__ == "__main__":
    main()
