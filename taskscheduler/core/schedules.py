"""The use cases of schedules: create, read, change, pause, resume, trigger and delete them,
and the task each fire makes."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from taskscheduler.core import paging, retry
from taskscheduler.core.cron import CronTimes
from taskscheduler.core.errors import InvalidArgument, ScheduleNotFound
from taskscheduler.core.limits import (
    MAX_CATCHUP_WINDOW,
    MAX_CRON_LENGTH,
    MAX_DESCRIPTION_LENGTH,
    MAX_TIME_ZONE_LENGTH,
)
from taskscheduler.core.model import (
    READ_SCOPE,
    WRITE_SCOPE,
    Caller,
    ResourcePosition,
    Schedule,
    ScheduleSpec,
    Task,
    TaskTemplate,
)
from taskscheduler.core.payloads import check_text
from taskscheduler.core.permissions import require
from taskscheduler.core.ports import ScheduleRepository
from taskscheduler.core.tasks import ScheduleRequest, TaskManager, parse_task_id

CATCHUP_GRACE = timedelta(seconds=10)
"""A fire this late always runs, whatever the schedule's catch-up window."""
MAX_FIRES_PER_PASS = 1000
"""Most missed fires of one schedule made up in one pass (the rest in the next passes)."""
NEXT_FIRE_TIMES = 5

SCHEDULE_FIELDS = frozenset(
    {"cron", "time_zone", "task", "overlap", "catchup_window", "description"}
)
"""The fields of a schedule an update may name (paused changes by Pause and Resume)."""


def request_for(schedule: Schedule, fire_time: datetime) -> ScheduleRequest:
    """The task of one fire; its idempotency key makes a second firing of the same time
    return the first one's task."""
    template = schedule.spec.task
    return ScheduleRequest(
        kind=template.kind,
        payload=template.payload,
        retry_policy=template.retry_policy,
        timeout=template.timeout,
        request_id=f"schedule:{schedule.id}:{fire_time.isoformat()}",
        queue=template.queue,
        priority=template.priority,
        concurrency_key=template.concurrency_key,
        schedule_id=schedule.id,
        fire_time=fire_time,
    )


class ScheduleManager:
    """The use cases of schedules; tasks are made by the TaskManager, as a call would."""

    def __init__(self, repository: ScheduleRepository, tasks: TaskManager) -> None:
        self._repository = repository
        self._tasks = tasks

    async def _validated(self, caller: Caller, spec: ScheduleSpec) -> tuple[ScheduleSpec, datetime]:
        times = _cron_times(spec)
        if not timedelta(0) <= spec.catchup_window <= MAX_CATCHUP_WINDOW:
            raise InvalidArgument("catchup_window", f"must be from 0 to {MAX_CATCHUP_WINDOW}")
        check_text(spec.description, "description")
        if len(spec.description) > MAX_DESCRIPTION_LENGTH:
            raise InvalidArgument("description", "is too long")
        await self._check_template(caller, spec.task)
        spec = replace(spec, cron=times.cron, time_zone=spec.time_zone or "UTC")
        next_fire = times.next_after(datetime.now(UTC))
        assert next_fire is not None  # CronTimes.parse saw one
        return spec, next_fire

    async def _check_template(self, caller: Caller, template: TaskTemplate) -> None:
        """The template as ScheduleTask would check it, its fields named under `task.`."""
        retry.check_override(template.retry_policy, "task.retry_policy.")
        probe = ScheduleRequest(
            kind=template.kind,
            payload=template.payload,
            retry_policy=template.retry_policy,
            timeout=template.timeout,
            queue=template.queue,
            priority=template.priority,
            concurrency_key=template.concurrency_key,
        )
        try:
            await self._tasks.check(caller, probe)
        except InvalidArgument as error:
            raise error.within("task") from None

    async def create(self, caller: Caller, spec: ScheduleSpec, paused: bool = False) -> Schedule:
        require(caller, WRITE_SCOPE)
        spec, next_fire = await self._validated(caller, spec)
        return await self._repository.create(caller.tenant, spec, None if paused else next_fire)

    async def get(self, caller: Caller, schedule_id: str) -> Schedule:
        require(caller, READ_SCOPE)
        return await self._existing(caller, schedule_id)

    async def _existing(self, caller: Caller, schedule_id: str) -> Schedule:
        """The caller's schedule, for a use case that has checked its scope."""
        return _found(
            await self._repository.get(caller.tenant, _parse_id(schedule_id)), schedule_id
        )

    async def list(
        self, caller: Caller, page_size: int, page_token: str
    ) -> tuple[list[Schedule], str]:
        require(caller, READ_SCOPE)
        size = paging.page_size_or_default(page_size)
        after = paging.decode_position_token(page_token)
        found = await self._repository.list(caller.tenant, size + 1, after)
        if len(found) <= size:
            return found, ""
        last = found[size - 1]
        return found[:size], paging.encode_position_token(
            ResourcePosition(last.create_time, last.id)
        )

    async def update(
        self, caller: Caller, schedule_id: str, spec: ScheduleSpec, fields: frozenset[str]
    ) -> Schedule:
        require(caller, WRITE_SCOPE)
        unknown = sorted(fields - SCHEDULE_FIELDS)
        if unknown:
            raise InvalidArgument(
                "update_mask", f"names no field of a schedule: {', '.join(unknown)}"
            )
        fields = fields or SCHEDULE_FIELDS
        current = await self._existing(caller, schedule_id)
        merged = replace(current.spec, **{name: getattr(spec, name) for name in fields})
        merged, next_fire = await self._validated(caller, merged)
        retimed = bool(fields & {"cron", "time_zone"})
        updated = await self._repository.update(
            caller.tenant,
            current.id,
            merged,
            fields,
            next_fire if retimed and not current.paused else None,
        )
        return _found(updated, schedule_id)

    async def delete(self, caller: Caller, schedule_id: str) -> None:
        require(caller, WRITE_SCOPE)
        if not await self._repository.delete(caller.tenant, _parse_id(schedule_id)):
            raise ScheduleNotFound(schedule_id)

    async def pause(self, caller: Caller, schedule_id: str) -> Schedule:
        require(caller, WRITE_SCOPE)
        paused = await self._repository.set_paused(
            caller.tenant, _parse_id(schedule_id), True, None
        )
        return _found(paused, schedule_id)

    async def resume(self, caller: Caller, schedule_id: str) -> Schedule:
        """Goes on from the next fire time after now: fires missed while paused are not made
        up."""
        require(caller, WRITE_SCOPE)
        current = await self._existing(caller, schedule_id)
        if not current.paused:
            return current  # its next fire and any buffered one stand
        next_fire = CronTimes.of(current.spec.cron, current.spec.time_zone).next_after(
            datetime.now(UTC)
        )
        resumed = await self._repository.set_paused(caller.tenant, current.id, False, next_fire)
        return _found(resumed, schedule_id)

    async def trigger(self, caller: Caller, schedule_id: str) -> Task:
        """Fires now, whatever the schedule's state and overlap policy."""
        require(caller, WRITE_SCOPE)
        schedule = await self._existing(caller, schedule_id)
        fire_time = datetime.now(UTC)
        task = await self._tasks.schedule(caller, request_for(schedule, fire_time))
        await self._repository.fired(caller.tenant, schedule.id, fire_time, task.id)
        return task


def next_fire_times(schedule: Schedule, count: int = NEXT_FIRE_TIMES) -> list[datetime]:
    """The schedule's coming fire times; none while it is paused."""
    if schedule.paused or schedule.next_fire_time is None:
        return []
    times = CronTimes.of(schedule.spec.cron, schedule.spec.time_zone)
    first = schedule.next_fire_time
    return [first, *times.after(first, count - 1)]


def _cron_times(spec: ScheduleSpec) -> CronTimes:
    """The fire times of a caller's expression and zone, their lengths (as sent, as REST counts
    them) bounded first."""
    if len(spec.cron) > MAX_CRON_LENGTH:
        raise InvalidArgument("cron", f"must be at most {MAX_CRON_LENGTH} characters")
    if len(spec.time_zone) > MAX_TIME_ZONE_LENGTH:
        raise InvalidArgument("time_zone", f"must be at most {MAX_TIME_ZONE_LENGTH} characters")
    return CronTimes.parse(spec.cron, spec.time_zone)


def _parse_id(value: str) -> uuid.UUID:
    return parse_task_id(value, "id")


def _found(schedule: Schedule | None, schedule_id: str) -> Schedule:
    if schedule is None:
        raise ScheduleNotFound(schedule_id)
    return schedule
