"""RFC 9457 problem details, and the one table from gRPC status codes to HTTP statuses."""

from __future__ import annotations

import math
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, TypeVar

import grpc
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from starlette.exceptions import HTTPException as StarletteHTTPException

HTTP_STATUS_FOR_GRPC: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.DATA_LOSS: 500,
}

M = TypeVar("M", bound=Message)

# Where REST is more precise than the gRPC code, by the ErrorInfo reason.
HTTP_STATUS_FOR_REASON: dict[str, int] = {"PAYLOAD_TOO_LARGE": 413}

PROBLEM_JSON = "application/problem+json"
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _detail(error: grpc.aio.AioRpcError, message: M) -> M | None:
    """The first detail of the call's google.rpc.Status that unpacks into `message`."""
    for key, value in error.trailing_metadata() or ():
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        for detail in status_pb2.Status.FromString(value).details:
            if detail.Unpack(message):
                return message
    return None


def problem_from_grpc(error: grpc.aio.AioRpcError, sent_a_body: bool) -> JSONResponse:
    code = error.code()
    retry = _detail(error, error_details_pb2.RetryInfo())
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and retry is None:
        return _over_message_limit(sent_a_body)
    status = HTTP_STATUS_FOR_GRPC.get(code, 500)
    extra: dict[str, Any] = {"grpc_code": code.name}
    info = _detail(error, error_details_pb2.ErrorInfo())
    if info is not None:
        status = HTTP_STATUS_FOR_REASON.get(info.reason, status)
        extra["reason"] = info.reason
        if "field" in info.metadata:
            extra["field"] = info.metadata["field"]
    detail = error.details() or code.name
    if status >= 500 and code not in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    ):
        detail = "internal error"  # never leak a server-side message or trace
    if code is grpc.StatusCode.UNAVAILABLE and info is None:
        detail = "the task service is unavailable; try again"
    response = problem(status, code.name.replace("_", " ").title(), detail, **extra)
    if code is grpc.StatusCode.UNAUTHENTICATED:
        response.headers["WWW-Authenticate"] = 'Bearer realm="taskscheduler", error="invalid_token"'
    if retry is not None:
        response.headers["Retry-After"] = str(
            math.ceil(retry.retry_delay.ToTimedelta().total_seconds())
        )
    return response


async def grpc_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, grpc.aio.AioRpcError)
    return problem_from_grpc(exc, sent_a_body=request.method in ("POST", "PUT", "PATCH"))


def _over_message_limit(sent_a_body: bool) -> JSONResponse:
    """Not the rate limiter (it always says when to retry): gRPC's own message size limit, whose
    text names the channel's internals. A request with a body outgrew it; otherwise the answer
    did (a page of large tasks)."""
    if sent_a_body:
        return problem(
            413,
            "Content Too Large",
            "the request is larger than the task service accepts",
            grpc_code="RESOURCE_EXHAUSTED",
            reason="REQUEST_TOO_LARGE",
            field="body",
        )
    return problem(
        502,
        "Bad Gateway",
        "the answer is larger than the task service sends; ask for a smaller page",
        grpc_code="RESOURCE_EXHAUSTED",
        reason="RESPONSE_TOO_LARGE",
    )


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unparsable body, unknown route) as problem details too."""
    assert isinstance(exc, StarletteHTTPException)
    title = HTTPStatus(exc.status_code).phrase
    return problem(exc.status_code, title, str(exc.detail))


async def too_deep_handler(request: Request, exc: Exception) -> JSONResponse:
    return problem(400, "Invalid Argument", "the body nests too deeply", field="body")


def _field_name(location: Sequence[int | str]) -> str:
    """A pydantic error location as the api names fields: `steps[3].depends_on`."""
    name = ""
    for part in location:
        if part in ("body", "query", "path"):
            continue
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else part
    return name


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = _field_name(first["loc"]) or "body"
    invalid = [{"field": _field_name(e["loc"]), "message": e["msg"]} for e in errors]
    return problem(400, "Invalid Argument", f"{field}: {first['msg']}", field=field, errors=invalid)
