"""The Python client of the TaskService: `Client` (blocking) and `AsyncClient` (asyncio), over
the generated stubs, with the bearer token, TLS, deadlines and retries of UNAVAILABLE built in.

    from taskscheduler.client import Client

    with Client("127.0.0.1:50051", token=TOKEN) as tasks:
        task = tasks.schedule("demo.sleep", {"seconds": 1})
        done = tasks.wait(task.id, timeout=30)
"""

from taskscheduler.client._async import AsyncClient
from taskscheduler.client._common import (
    FINISHED,
    ClientError,
    Retries,
    TaskNotFinished,
    status_name,
)
from taskscheduler.client._sync import Client
from taskscheduler.v1.task_pb2 import Task, TaskStatus
from taskscheduler.v1.task_service_pb2 import StreamStatusResponse as StatusEvent

__all__ = [
    "FINISHED",
    "AsyncClient",
    "Client",
    "ClientError",
    "Retries",
    "StatusEvent",
    "Task",
    "TaskNotFinished",
    "TaskStatus",
    "status_name",
]
