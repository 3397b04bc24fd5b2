"""The /v1/workers route: the fleet of worker processes, from ListWorkers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.calls import Api
from gateway.schemas import workers as schemas
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1 import worker_pb2

router = APIRouter()


@router.get("/v1/workers", response_model=schemas.WorkerList, tags=["workers"])
async def list_workers(
    api: Api, state: Annotated[list[schemas.WorkerStateName] | None, Query()] = None
) -> schemas.WorkerList:
    """Every worker process (each Celery worker's main process, then its pool processes), with
    the caller's tasks each runs; repeat `state` to select several."""
    states = [worker_pb2.WorkerState.Value(schemas.WORKER_STATE_PREFIX + s) for s in state or []]
    response = await api.stub.ListWorkers(
        pb.ListWorkersRequest(states=states), timeout=api.deadline, metadata=api.metadata
    )
    return schemas.WorkerList(workers=[schemas.worker_out(worker) for worker in response.workers])
