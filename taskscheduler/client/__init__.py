"""The Python client of the TaskService: `Client` (blocking) and `AsyncClient` (asyncio), over
the generated stubs, with the bearer token, TLS, deadlines and retries of UNAVAILABLE built in.

    from taskscheduler.client import Client

    with Client("127.0.0.1:50051", token=TOKEN) as tasks:
        task = tasks.schedule("demo.sleep", {"seconds": 1})
        done = tasks.wait(task.id, timeout=30)

Queues (`create_queue`, `pause_queue`, `purge_queue`, ...) and cron schedules
(`create_schedule`, `trigger_schedule`, ...) are managed through the same clients.
"""

from taskscheduler.client._async import AsyncClient
from taskscheduler.client._common import (
    FINISHED,
    ClientError,
    Purged,
    QueueChanges,
    Retries,
    RetryOptions,
    ScheduleChanges,
    TaskNotFinished,
    retry_policy,
    status_name,
    task_request,
)
from taskscheduler.client._sync import Client
from taskscheduler.v1.queue_pb2 import Queue, QueueState, RateLimit
from taskscheduler.v1.schedule_pb2 import OverlapPolicy, Schedule, TaskTemplate
from taskscheduler.v1.task_pb2 import RetryPolicy, Task, TaskStatus
from taskscheduler.v1.task_service_pb2 import StreamStatusResponse as StatusEvent

__all__ = [
    "FINISHED",
    "AsyncClient",
    "Client",
    "ClientError",
    "OverlapPolicy",
    "Purged",
    "Queue",
    "QueueChanges",
    "QueueState",
    "RateLimit",
    "Retries",
    "RetryOptions",
    "RetryPolicy",
    "Schedule",
    "ScheduleChanges",
    "StatusEvent",
    "Task",
    "TaskNotFinished",
    "TaskStatus",
    "TaskTemplate",
    "retry_policy",
    "status_name",
    "task_request",
]
