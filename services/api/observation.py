"""A server interceptor around every gRPC call: counts it by method and status code with its
duration (for a stream, until it ends), and runs it in a span that continues the caller's W3C
trace context (the `traceparent` metadata): the call's log lines and the task's broker message
carry it on."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from taskscheduler import tracing
from taskscheduler.adapters.metrics import observe_grpc


def _code(context: grpc.aio.ServicerContext, failed: bool, cancelled: bool = False) -> str:
    code = context.code()
    if code is not None:
        return str(code.name) if isinstance(code, grpc.StatusCode) else str(code)
    if cancelled:  # the client hung up, or its deadline passed: not a server error
        remaining = context.time_remaining()
        return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
    return "UNKNOWN" if failed else "OK"


def _traceparent(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "traceparent" and isinstance(value, str):
            return value
    return None


class CallObservation(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        method = str(details.method)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _timed_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _timed_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _timed_unary(behavior: Any, method: str) -> Any:
    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        failed, cancelled = True, False
        try:
            with tracing.span(method, _traceparent(context), **{"rpc.method": method}):
                response = await behavior(request, context)
            failed = False
            return response
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            observe_grpc(method, _code(context, failed, cancelled), started)

    return unary


def _timed_stream(behavior: Any, method: str) -> Any:
    if not inspect.isasyncgenfunction(behavior):
        return _timed_unary(behavior, method)  # it streams with context.write()

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        started = time.perf_counter()
        failed, cancelled = True, False
        try:
            with tracing.span(method, _traceparent(context), **{"rpc.method": method}):
                async for response in behavior(request, context):
                    yield response
            failed = False
        except (asyncio.CancelledError, GeneratorExit):
            cancelled = True
            raise
        finally:
            observe_grpc(method, _code(context, failed, cancelled), started)

    return stream
