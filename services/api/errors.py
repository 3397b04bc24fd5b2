"""The one table from domain errors to gRPC status codes, with google.rpc.ErrorInfo details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from taskscheduler.core import errors

ERROR_DOMAIN = "taskscheduler"

STATUS_CODES: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.TaskNotFound: grpc.StatusCode.NOT_FOUND,
    errors.TaskFinished: grpc.StatusCode.FAILED_PRECONDITION,
    errors.TaskNotFinished: grpc.StatusCode.FAILED_PRECONDITION,
    errors.QueueNotFound: grpc.StatusCode.NOT_FOUND,
    errors.ScheduleNotFound: grpc.StatusCode.NOT_FOUND,
    errors.WorkflowNotFound: grpc.StatusCode.NOT_FOUND,
    errors.WorkflowFinished: grpc.StatusCode.FAILED_PRECONDITION,
    errors.QueueExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.QueueInUse: grpc.StatusCode.FAILED_PRECONDITION,
    errors.IdempotencyConflict: grpc.StatusCode.ALREADY_EXISTS,
    errors.StorageUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.BrokerUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def status_code_for(error: errors.DomainError) -> grpc.StatusCode:
    for error_type in type(error).__mro__:
        code = STATUS_CODES.get(error_type)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def to_rpc_status(error: errors.DomainError) -> status_pb2.Status:
    """A google.rpc.Status carrying ErrorInfo(reason, domain, metadata{field})."""
    code = status_code_for(error)
    metadata = {"field": error.field} if isinstance(error, errors.InvalidArgument) else {}
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=metadata)
    details = [_packed(info)]
    if isinstance(error, errors.RateLimited):
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(max(1, round(error.retry_after * 1000)))
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status_pb2.Status(
        code=getattr(code_pb2, code.name), message=error.message, details=details
    )


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


async def abort_with(context: grpc.aio.ServicerContext, error: errors.DomainError) -> None:
    await context.abort_with_status(rpc_status.to_status(to_rpc_status(error)))


async def abort_internal(context: grpc.aio.ServicerContext) -> None:
    """INTERNAL for an error the core did not raise on purpose: its text may name internals
    (SQL, paths, values), so none of it reaches the caller."""
    info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=ERROR_DOMAIN)
    status = status_pb2.Status(
        code=code_pb2.INTERNAL, message="internal error", details=[_packed(info)]
    )
    await context.abort_with_status(rpc_status.to_status(status))
