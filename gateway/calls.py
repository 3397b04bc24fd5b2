"""What the gateway sends with each gRPC call: the caller's bearer token (its Authorization
header, or the dashboard's sign-in cookie) and its W3C trace context."""

from __future__ import annotations

from fastapi import Request

SESSION_COOKIE = "taskscheduler_token"


def call_metadata(request: Request) -> tuple[tuple[str, str], ...]:
    """Passed through untouched: the api authenticates. The cookie is HttpOnly and
    SameSite=Strict, so only pages of this origin can make a browser send it."""
    metadata: list[tuple[str, str]] = []
    authorization = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    if authorization:
        metadata.append(("authorization", authorization))
    elif cookie:
        metadata.append(("authorization", f"Bearer {cookie}"))
    if "traceparent" in request.headers:
        metadata.append(("traceparent", request.headers["traceparent"]))
    return tuple(metadata)
