"""The /v1/schedules resource routes: each translates to one TaskService schedule RPC."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response

from gateway.calls import Api
from gateway.params import PageSize, PageToken
from gateway.schemas import schedules as schemas
from gateway.schemas import tasks
from taskscheduler.v1 import task_service_pb2 as pb

ScheduleId = Annotated[uuid.UUID, Path(description="The schedule's UUID.")]


router = APIRouter()


@router.post(
    "/v1/schedules", status_code=201, response_model=schemas.ScheduleOut, tags=["schedules"]
)
async def create_schedule(api: Api, body: schemas.ScheduleBody) -> schemas.ScheduleOut:
    """Creates a cron schedule; its task template is checked as POST /v1/tasks checks a task
    (400 naming the field: `cron`, `time_zone`, `task.kind`, `task.queue`, ...)."""
    response = await api.stub.CreateSchedule(
        schemas.create_schedule_request(body),
        timeout=api.deadline,
        metadata=api.metadata,
    )
    return schemas.schedule_out(response.schedule)


@router.get("/v1/schedules", response_model=schemas.ScheduleList, tags=["schedules"])
async def list_schedules(
    api: Api,
    page_size: PageSize = 0,
    page_token: PageToken = "",
) -> schemas.ScheduleList:
    """The caller's schedules, oldest first."""
    response = await api.stub.ListSchedules(
        pb.ListSchedulesRequest(page_size=page_size, page_token=page_token),
        timeout=api.deadline,
        metadata=api.metadata,
    )
    return schemas.ScheduleList(
        schedules=[schemas.schedule_out(schedule) for schedule in response.schedules],
        next_page_token=response.next_page_token,
    )


@router.post(
    "/v1/schedules/{schedule_id}:pause", response_model=schemas.ScheduleOut, tags=["schedules"]
)
async def pause_schedule(api: Api, schedule_id: ScheduleId) -> schemas.ScheduleOut:
    """Stops the schedule from firing. Idempotent."""
    response = await api.stub.PauseSchedule(
        pb.PauseScheduleRequest(id=str(schedule_id)),
        timeout=api.deadline,
        metadata=api.metadata,
    )
    return schemas.schedule_out(response.schedule)


@router.post(
    "/v1/schedules/{schedule_id}:resume", response_model=schemas.ScheduleOut, tags=["schedules"]
)
async def resume_schedule(api: Api, schedule_id: ScheduleId) -> schemas.ScheduleOut:
    """Lets a paused schedule fire again, from its next fire time after now. Idempotent."""
    response = await api.stub.ResumeSchedule(
        pb.ResumeScheduleRequest(id=str(schedule_id)),
        timeout=api.deadline,
        metadata=api.metadata,
    )
    return schemas.schedule_out(response.schedule)


@router.post(
    "/v1/schedules/{schedule_id}:trigger",
    status_code=201,
    response_model=tasks.TaskOut,
    tags=["schedules"],
)
async def trigger_schedule(api: Api, schedule_id: ScheduleId) -> tasks.TaskOut:
    """Fires the schedule now, paused or not, whatever its overlap policy: 201 and the new
    task (its `schedule_id` and `fire_time` set)."""
    response = await api.stub.TriggerSchedule(
        pb.TriggerScheduleRequest(id=str(schedule_id)),
        timeout=api.deadline,
        metadata=api.metadata,
    )
    return tasks.task_out(response.task)


@router.get("/v1/schedules/{schedule_id}", response_model=schemas.ScheduleOut, tags=["schedules"])
async def get_schedule(api: Api, schedule_id: ScheduleId) -> schemas.ScheduleOut:
    """A schedule with its next fire times."""
    response = await api.stub.GetSchedule(
        pb.GetScheduleRequest(id=str(schedule_id)),
        timeout=api.deadline,
        metadata=api.metadata,
    )
    return schemas.schedule_out(response.schedule)


@router.patch("/v1/schedules/{schedule_id}", response_model=schemas.ScheduleOut, tags=["schedules"])
async def update_schedule(
    api: Api, schedule_id: ScheduleId, body: schemas.SchedulePatchBody
) -> schemas.ScheduleOut:
    """Changes the fields whose keys the body holds (JSON merge-patch style); a new cron or
    time zone fires from now on. An empty body changes nothing."""
    if not body.model_fields_set:
        got = await api.stub.GetSchedule(
            pb.GetScheduleRequest(id=str(schedule_id)), timeout=api.deadline, metadata=api.metadata
        )
        return schemas.schedule_out(got.schedule)
    response = await api.stub.UpdateSchedule(
        schemas.update_schedule_request(str(schedule_id), body),
        timeout=api.deadline,
        metadata=api.metadata,
    )
    return schemas.schedule_out(response.schedule)


@router.delete(
    "/v1/schedules/{schedule_id}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Deleted; the tasks it made stay."}},
    tags=["schedules"],
)
async def delete_schedule(api: Api, schedule_id: ScheduleId) -> Response:
    """Deletes a schedule; the tasks it made stay."""
    await api.stub.DeleteSchedule(
        pb.DeleteScheduleRequest(id=str(schedule_id)),
        timeout=api.deadline,
        metadata=api.metadata,
    )
    return Response(status_code=204)
