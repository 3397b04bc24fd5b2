"""The /v1/schedules resource routes: each translates to one TaskService schedule RPC."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from gateway import schemas
from gateway.calls import call_metadata, task_service
from taskscheduler.v1 import task_service_pb2 as pb

ScheduleId = Annotated[uuid.UUID, Path(description="The schedule's UUID.")]


def register(routes: APIRouter, deadline: float) -> None:
    """Adds the schedule routes to `routes` (the `id:verb` routes before `{schedule_id}`'s own)."""

    @routes.post(
        "/v1/schedules", status_code=201, response_model=schemas.ScheduleOut, tags=["schedules"]
    )
    async def create_schedule(request: Request, body: schemas.ScheduleBody) -> schemas.ScheduleOut:
        """Creates a cron schedule; its task template is checked as POST /v1/tasks checks a task
        (400 naming the field: `cron`, `time_zone`, `task.kind`, `task.queue`, ...)."""
        response = await task_service(request).CreateSchedule(
            schemas.create_schedule_request(body),
            timeout=deadline,
            metadata=call_metadata(request),
        )
        return schemas.schedule_out(response.schedule)

    @routes.get("/v1/schedules", response_model=schemas.ScheduleList, tags=["schedules"])
    async def list_schedules(
        request: Request,
        page_size: Annotated[int, Query(ge=0, le=1000, description="0: 50.")] = 0,
        page_token: Annotated[str, Query(max_length=1000)] = "",
    ) -> schemas.ScheduleList:
        """The caller's schedules, oldest first."""
        response = await task_service(request).ListSchedules(
            pb.ListSchedulesRequest(page_size=page_size, page_token=page_token),
            timeout=deadline,
            metadata=call_metadata(request),
        )
        return schemas.ScheduleList(
            schedules=[schemas.schedule_out(schedule) for schedule in response.schedules],
            next_page_token=response.next_page_token,
        )

    @routes.post(
        "/v1/schedules/{schedule_id}:pause", response_model=schemas.ScheduleOut, tags=["schedules"]
    )
    async def pause_schedule(request: Request, schedule_id: ScheduleId) -> schemas.ScheduleOut:
        """Stops the schedule from firing. Idempotent."""
        response = await task_service(request).PauseSchedule(
            pb.PauseScheduleRequest(id=str(schedule_id)),
            timeout=deadline,
            metadata=call_metadata(request),
        )
        return schemas.schedule_out(response.schedule)

    @routes.post(
        "/v1/schedules/{schedule_id}:resume", response_model=schemas.ScheduleOut, tags=["schedules"]
    )
    async def resume_schedule(request: Request, schedule_id: ScheduleId) -> schemas.ScheduleOut:
        """Lets a paused schedule fire again, from its next fire time after now. Idempotent."""
        response = await task_service(request).ResumeSchedule(
            pb.ResumeScheduleRequest(id=str(schedule_id)),
            timeout=deadline,
            metadata=call_metadata(request),
        )
        return schemas.schedule_out(response.schedule)

    @routes.post(
        "/v1/schedules/{schedule_id}:trigger",
        status_code=201,
        response_model=schemas.TaskOut,
        tags=["schedules"],
    )
    async def trigger_schedule(request: Request, schedule_id: ScheduleId) -> schemas.TaskOut:
        """Fires the schedule now, paused or not, whatever its overlap policy: 201 and the new
        task (its `schedule_id` and `fire_time` set)."""
        response = await task_service(request).TriggerSchedule(
            pb.TriggerScheduleRequest(id=str(schedule_id)),
            timeout=deadline,
            metadata=call_metadata(request),
        )
        return schemas.task_out(response.task)

    @routes.get(
        "/v1/schedules/{schedule_id}", response_model=schemas.ScheduleOut, tags=["schedules"]
    )
    async def get_schedule(request: Request, schedule_id: ScheduleId) -> schemas.ScheduleOut:
        """A schedule with its next fire times."""
        response = await task_service(request).GetSchedule(
            pb.GetScheduleRequest(id=str(schedule_id)),
            timeout=deadline,
            metadata=call_metadata(request),
        )
        return schemas.schedule_out(response.schedule)

    @routes.patch(
        "/v1/schedules/{schedule_id}", response_model=schemas.ScheduleOut, tags=["schedules"]
    )
    async def update_schedule(
        request: Request, schedule_id: ScheduleId, body: schemas.SchedulePatchBody
    ) -> schemas.ScheduleOut:
        """Changes the fields whose keys the body holds (JSON merge-patch style); a new cron or
        time zone fires from now on. An empty body changes nothing."""
        metadata = call_metadata(request)
        if not body.model_fields_set:
            got = await task_service(request).GetSchedule(
                pb.GetScheduleRequest(id=str(schedule_id)), timeout=deadline, metadata=metadata
            )
            return schemas.schedule_out(got.schedule)
        response = await task_service(request).UpdateSchedule(
            schemas.update_schedule_request(str(schedule_id), body),
            timeout=deadline,
            metadata=metadata,
        )
        return schemas.schedule_out(response.schedule)

    @routes.delete(
        "/v1/schedules/{schedule_id}",
        status_code=204,
        response_class=Response,
        responses={204: {"description": "Deleted; the tasks it made stay."}},
        tags=["schedules"],
    )
    async def delete_schedule(request: Request, schedule_id: ScheduleId) -> Response:
        """Deletes a schedule; the tasks it made stay."""
        await task_service(request).DeleteSchedule(
            pb.DeleteScheduleRequest(id=str(schedule_id)),
            timeout=deadline,
            metadata=call_metadata(request),
        )
        return Response(status_code=204)
