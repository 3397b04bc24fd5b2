"""The REST body of a worker process and its proto mapping."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, cast

from pydantic import BaseModel

from gateway.schemas.common import time_of
from taskscheduler.v1 import worker_pb2

WorkerStateName = Literal["ONLINE", "LOST", "STOPPED"]
WORKER_STATE_PREFIX = "WORKER_STATE_"


class WorkerOut(BaseModel):
    """A worker process: a Celery worker's main process, or one of its pool processes."""

    name: str
    host: str
    pid: int
    celery_hostname: str
    parent: str
    queues: list[str]
    concurrency: int
    running_task_ids: list[str]
    state: WorkerStateName
    version: str
    start_time: datetime | None
    heartbeat_time: datetime | None
    stop_time: datetime | None
    heartbeat_interval: float


class WorkerList(BaseModel):
    workers: list[WorkerOut]


def worker_state_name(value: int) -> WorkerStateName:
    name = worker_pb2.WorkerState.Name(worker_pb2.WorkerState.ValueType(value))
    return cast(WorkerStateName, name.removeprefix(WORKER_STATE_PREFIX))


def worker_out(worker: worker_pb2.Worker) -> WorkerOut:
    return WorkerOut(
        name=worker.name,
        host=worker.host,
        pid=worker.pid,
        celery_hostname=worker.celery_hostname,
        parent=worker.parent,
        queues=list(worker.queues),
        concurrency=worker.concurrency,
        running_task_ids=list(worker.running_task_ids),
        state=worker_state_name(worker.state),
        version=worker.version,
        start_time=time_of(worker, "start_time"),
        heartbeat_time=time_of(worker, "heartbeat_time"),
        stop_time=time_of(worker, "stop_time"),
        heartbeat_interval=worker.heartbeat_interval.ToTimedelta().total_seconds(),
    )
