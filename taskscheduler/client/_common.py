"""What both clients share: request building, the retry schedule, and errors."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import grpc
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb

DEFAULT_ADDRESS = "127.0.0.1:50051"
FINISHED = frozenset(
    {task_pb2.TASK_STATUS_SUCCESS, task_pb2.TASK_STATUS_FAILED, task_pb2.TASK_STATUS_CANCELLED}
)
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})


def status_name(status: int) -> str:
    """TASK_STATUS_SUCCESS -> SUCCESS."""
    return task_pb2.TaskStatus.Name(status).removeprefix("TASK_STATUS_")  # type: ignore[arg-type]


@dataclass(frozen=True)
class Retries:
    """How a call that fails with UNAVAILABLE is tried again: up to `attempts` tries in all,
    waiting a random time up to an exponential backoff (full jitter) between them."""

    attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0

    def delays(self) -> Iterator[float | None]:
        """The wait before each further try, then None: no more tries."""
        for number in range(self.attempts - 1):
            ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier**number)
            yield random.uniform(0, ceiling)
        yield None


class ClientError(Exception):
    """A call failed: its gRPC `code`, the service's `reason` (google.rpc.ErrorInfo, e.g.
    TASK_NOT_FOUND) and, for a bad request, the `field` at fault."""

    def __init__(self, code: grpc.StatusCode, details: str, reason: str = "", field: str = ""):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.reason = reason
        self.field = field

    @classmethod
    def of(cls, error: grpc.RpcError) -> ClientError:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        reason, field = "", ""
        status = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None
        for detail in status.details if status is not None else []:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                reason, field = info.reason, info.metadata.get("field", "")
        return cls(code, details or "", reason, field)


class TaskNotFinished(TimeoutError):
    """wait() ran out of time; `task` is the task as last seen."""

    def __init__(self, task: task_pb2.Task) -> None:
        super().__init__(f"task {task.id} is still {status_name(task.status)}")
        self.task = task


def schedule_request(
    kind: str,
    payload: Mapping[str, Any] | None,
    *,
    run_at: datetime | None,
    timeout: timedelta | None,
    max_attempts: int | None,
    request_id: str,
) -> pb.ScheduleTaskRequest:
    request = pb.ScheduleTaskRequest(kind=kind, request_id=request_id)
    if payload:
        request.payload.CopyFrom(struct(payload))
    if run_at is not None:
        request.run_at.FromDatetime(run_at)
    if timeout is not None:
        request.timeout.FromTimedelta(timeout)
    if max_attempts is not None:
        request.retry_policy.max_attempts = max_attempts
    return request


def struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(dict(values))
    return message


def list_request(
    kind: str, statuses: Iterable[int], page_size: int, page_token: str
) -> pb.ListTasksRequest:
    request = pb.ListTasksRequest(kind=kind, page_size=page_size, page_token=page_token)
    request.statuses.extend(task_pb2.TaskStatus.ValueType(status) for status in statuses)
    return request


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def credentials(
    tls: bool, root_certificates: bytes | None, client_certificate: tuple[bytes, bytes] | None
) -> grpc.ChannelCredentials | None:
    """None for a plaintext channel. `client_certificate` is (private key, certificate chain)."""
    if not (tls or root_certificates or client_certificate):
        return None
    key, chain = client_certificate or (None, None)
    return grpc.ssl_channel_credentials(root_certificates, key, chain)


def same_event(a: pb.StreamStatusResponse | None, b: pb.StreamStatusResponse) -> bool:
    """A resubscribed stream starts with the current state: an event seen already."""
    return a is not None and (a.status, a.attempt) == (b.status, b.attempt)
