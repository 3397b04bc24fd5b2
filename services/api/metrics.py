"""A server interceptor counting every gRPC call by method and status code, with its
duration (for a stream, until it ends)."""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from taskscheduler.adapters.metrics import observe_grpc


def _code(context: grpc.aio.ServicerContext, failed: bool) -> str:
    code = context.code()
    if code is None:
        return "UNKNOWN" if failed else "OK"
    return str(code.name) if isinstance(code, grpc.StatusCode) else str(code)


class RequestMetrics(grpc.aio.ServerInterceptor):  # type: ignore[misc]
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
        failed = True
        try:
            response = await behavior(request, context)
            failed = False
            return response
        finally:
            observe_grpc(method, _code(context, failed), started)

    return unary


def _timed_stream(behavior: Any, method: str) -> Any:
    if not inspect.isasyncgenfunction(behavior):
        return _timed_unary(behavior, method)  # it streams with context.write()

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        started = time.perf_counter()
        failed = True
        try:
            async for response in behavior(request, context):
                yield response
            failed = False
        finally:
            observe_grpc(method, _code(context, failed), started)

    return stream
