"""How the gateway's routes reach the api: its stub, and what each call carries (the caller's
bearer token, from its Authorization header or the dashboard's sign-in cookie, and its W3C
trace context)."""

from __future__ import annotations

from fastapi import Request

from taskscheduler import logs
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub

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
    traceparent = logs.current_traceparent() or request.headers.get("traceparent")
    if traceparent:
        metadata.append(("traceparent", traceparent))
    return tuple(metadata)


def task_service(request: Request) -> TaskServiceStub:
    """The stub on the gateway's one channel to the api (opened with the app)."""
    return request.app.state.stub  # type: ignore[no-any-return]
