"""The REST bodies of the bulk actions (:batchCancel, :batchRetry) and their proto mappings."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.common import STATUS_PREFIX, Instant, Payload, StatusName, TaskQueue
from taskscheduler.core.limits import MAX_BULK_IDS, MAX_ERROR_TYPE_LENGTH, MAX_KIND_LENGTH
from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb

TIME_FIELDS = ("create_time_after", "create_time_before", "finish_time_after", "finish_time_before")


class TaskSelectorBody(BaseModel):
    """Every task whose fields match all of these (created before the call)."""

    model_config = ConfigDict(extra="forbid")

    statuses: list[StatusName] = Field(
        default_factory=list, max_length=len(task_pb2.TaskStatus.keys())
    )
    kind: str = Field(default="", max_length=MAX_KIND_LENGTH)
    queue: TaskQueue = ""
    schedule_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    create_time_after: Instant | None = Field(default=None, description="Created at or after.")
    create_time_before: Instant | None = Field(default=None, description="Created before.")
    finish_time_after: Instant | None = Field(default=None, description="Finished at or after.")
    finish_time_before: Instant | None = Field(default=None, description="Finished before.")
    error_type: str = Field(
        default="",
        max_length=MAX_ERROR_TYPE_LENGTH,
        description="Whose last attempt ended with this error type (GET /v1/failures).",
    )
    payload_contains: Payload | None = Field(
        default=None, description="Whose payload contains this object."
    )
    task_id_prefix: str = Field(
        default="", max_length=36, description="Whose id starts so (hex digits, dashes)."
    )


class BulkBody(BaseModel):
    """`task_ids` (up to 1,000) or `filter`, not both."""

    model_config = ConfigDict(extra="forbid")

    task_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_BULK_IDS)
    filter: TaskSelectorBody | None = None
    dry_run: bool = Field(default=False, description="Only count the matches; act on none.")


class NotActedOut(BaseModel):
    task_id: str
    reason: str = Field(description="TASK_NOT_FOUND, TASK_ALREADY_FINISHED, TASK_NOT_FINISHED ...")
    message: str


class BatchCancelOut(BaseModel):
    matched: int
    cancelled: int = Field(description="Cancelled, or asked to stop when running.")
    not_acted_count: int
    not_acted: list[NotActedOut] = Field(description="The first 1,000 not acted on, with why.")


class RetriedOut(BaseModel):
    task_id: str
    copy_id: str


class BatchRetryOut(BaseModel):
    matched: int
    retried: int = Field(description="Retried: a copy made, or found from an earlier try.")
    not_acted_count: int
    not_acted: list[NotActedOut] = Field(description="The first 1,000 not acted on, with why.")
    copies: list[RetriedOut] = Field(description="The first 1,000 retried, with their copy.")


def fill_request(
    body: BulkBody, message: pb.BatchCancelTasksRequest | pb.BatchRetryTasksRequest
) -> None:
    message.task_ids.extend(str(task_id) for task_id in body.task_ids)
    message.dry_run = body.dry_run
    chosen = body.filter
    if chosen is None:
        return
    selector = message.filter
    selector.SetInParent()  # an empty filter is a filter: every task
    selector.statuses.extend(task_pb2.TaskStatus.Value(STATUS_PREFIX + s) for s in chosen.statuses)
    selector.kind = chosen.kind
    selector.queue = chosen.queue
    selector.schedule_id = str(chosen.schedule_id) if chosen.schedule_id else ""
    selector.workflow_id = str(chosen.workflow_id) if chosen.workflow_id else ""
    selector.error_type = chosen.error_type
    selector.task_id_prefix = chosen.task_id_prefix
    if chosen.payload_contains is not None:
        selector.payload_contains.update(chosen.payload_contains)
    for field in TIME_FIELDS:
        value = getattr(chosen, field)
        if value is not None:
            getattr(selector, field).FromDatetime(value)


def _not_acted(items: list[pb.TaskNotActed]) -> list[NotActedOut]:
    return [NotActedOut(task_id=i.task_id, reason=i.reason, message=i.message) for i in items]


def cancel_out(response: pb.BatchCancelTasksResponse) -> BatchCancelOut:
    return BatchCancelOut(
        matched=response.matched_count,
        cancelled=response.cancelled_count,
        not_acted_count=response.not_acted_count,
        not_acted=_not_acted(list(response.not_acted)),
    )


def retry_out(response: pb.BatchRetryTasksResponse) -> BatchRetryOut:
    return BatchRetryOut(
        matched=response.matched_count,
        retried=response.retried_count,
        not_acted_count=response.not_acted_count,
        not_acted=_not_acted(list(response.not_acted)),
        copies=[RetriedOut(task_id=r.task_id, copy_id=r.copy_id) for r in response.retried],
    )
