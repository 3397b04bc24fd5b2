"""Every REST request as a span (child of the caller's traceparent) and in the request metrics:
plain ASGI, so that it costs no task group or stream per request as an http middleware does."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskscheduler import tracing
from taskscheduler.adapters.metrics import observe_http

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestObservation:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when a handler raises

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        incoming = _header(scope, b"traceparent")
        try:
            with tracing.span(f"{scope['method']} {scope['path']}", incoming):
                await self.app(scope, receive, send_observed)
        finally:
            # The route's template, never the raw path (task ids would make a series each),
            # and a method outside HTTP's own as OTHER: labels a caller cannot multiply.
            template = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"] if scope["method"] in HTTP_METHODS else "OTHER"
            observe_http(method, template, status, started)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None
