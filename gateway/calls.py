"""How the gateway's routes reach the api: one FastAPI dependency supplies the stub, the call
deadline and what each call carries (the caller's bearer token, from its Authorization header
or the dashboard's sign-in cookie, and its W3C trace context)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import grpc
from fastapi import Depends, Request
from sse_starlette import EventSourceResponse

from taskscheduler import logs
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub

SESSION_COOKIE = "taskscheduler_token"
BULK_DEADLINE_SECONDS = 300.0


@dataclass(frozen=True)
class ApiCall:
    """What a route passes to each call of the api."""

    stub: TaskServiceStub
    """The stub on the gateway's one channel to the api (opened with the app)."""
    deadline: float
    """Seconds a unary call may take (the gateway's deadline setting)."""
    metadata: tuple[tuple[str, str], ...]

    @property
    def bulk_deadline(self) -> float:
        """A bulk action acts on every task a filter matches, one after another: thousands
        take longer than a unary call may, so it gets BULK_DEADLINE_SECONDS at least."""
        return max(self.deadline, BULK_DEADLINE_SECONDS)


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


def api_call(request: Request) -> ApiCall:
    state = request.app.state
    return ApiCall(stub=state.stub, deadline=state.deadline, metadata=call_metadata(request))


Api = Annotated[ApiCall, Depends(api_call)]
"""The dependency every route that calls the api declares."""


async def event_stream(
    call: grpc.aio.UnaryStreamCall[Any, Any], event_of: Callable[[Any], dict[str, str]]
) -> EventSourceResponse:
    """Server-Sent Events of a server-streaming call, one per message (`event_of` gives its
    event name and data), closing when the call ends. The first message is read before the
    answer starts, so that the call's errors (404, 400) are the answer's status."""
    first = await call.read()
    if first is grpc.aio.EOF:
        return EventSourceResponse(iter(()))

    async def events() -> AsyncIterator[dict[str, str]]:
        message = first
        try:
            while message is not grpc.aio.EOF:
                yield event_of(message)
                message = await call.read()
        finally:
            call.cancel()

    return EventSourceResponse(events())
