"""Cron schedules: their fire times (time zones and daylight saving included), their use cases,
and the firing of due ones, one task per fire."""

from __future__ import annotations

import heapq
import logging
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from taskscheduler.core import paging, retry
from taskscheduler.core.errors import (
    BrokerUnavailable,
    DomainError,
    InvalidArgument,
    ScheduleNotFound,
    StorageUnavailable,
)
from taskscheduler.core.limits import (
    MAX_CATCHUP_WINDOW,
    MAX_CRON_LENGTH,
    MAX_DESCRIPTION_LENGTH,
    MAX_TIME_ZONE_LENGTH,
)
from taskscheduler.core.manager import ScheduleRequest, TaskManager, parse_task_id
from taskscheduler.core.model import (
    READ_SCOPE,
    WRITE_SCOPE,
    Caller,
    Overlap,
    ResourcePosition,
    Schedule,
    ScheduleSpec,
    Task,
    TaskTemplate,
)
from taskscheduler.core.payloads import check_text
from taskscheduler.core.permissions import require

log = logging.getLogger("taskscheduler.schedules")

NAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
CATCHUP_GRACE = timedelta(seconds=10)
"""A fire this late always runs, whatever the schedule's catch-up window."""
MAX_FIRES_PER_PASS = 1000
"""Most missed fires of one schedule made up in one pass (the rest in the next passes)."""
NEXT_FIRE_TIMES = 5
_SEARCH_LIMIT = 100_000  # cron steps searched for a next fire before calling it never

SCHEDULE_FIELDS = frozenset(
    {"cron", "time_zone", "task", "overlap", "catchup_window", "description"}
)
"""The fields of a schedule an update may name (paused changes by Pause and Resume)."""


@dataclass(frozen=True)
class CronTimes:
    """The fire times of a cron expression read in a time zone, as instants (UTC).

    The expression is iterated in wall time. A wall time that a daylight-saving change skips
    fires as if the clock had not moved (02:30 on a night that jumps from 02:00 to 03:00 fires
    at 03:30, and */15 keeps firing every 15 minutes of real time). A wall time that occurs
    twice fires once, at its first occurrence, unless the expression runs every hour (its hour
    field is "*", or @hourly), which then fires in both. Fire times strictly increase.
    """

    cron: str
    zone: ZoneInfo

    @classmethod
    def parse(cls, cron: str, time_zone: str) -> CronTimes:
        times = cls(_checked_cron(cron), _zone(time_zone))
        if not times.after(datetime.now(UTC), 1):
            raise InvalidArgument("cron", "never fires")
        return times

    @property
    def _hourly(self) -> bool:
        fields = self.cron.split()
        if len(fields) == 1:
            return fields[0] == "@hourly"
        return fields[-4] == "*"

    def after(self, instant: datetime, count: int) -> list[datetime]:
        """The first `count` fire times strictly after `instant`."""
        fields = self.cron.split()
        steps = croniter(self.cron, self._start(instant), second_at_beginning=len(fields) == 6)
        found: list[datetime] = []
        last = instant
        # Candidates wait here until no later wall time can give an earlier instant: a repeated
        # wall time's second occurrence comes after the first occurrences of the walls behind it.
        waiting: list[datetime] = []

        def emit(fire: datetime) -> None:
            nonlocal last
            if fire > last and len(found) < count:
                found.append(fire)
                last = fire

        for _ in range(_SEARCH_LIMIT):
            if len(found) == count:
                return found
            try:
                wall: datetime = steps.get_next(datetime)
            except CroniterError:
                break
            first, *second = self._instants(wall)
            while waiting and waiting[0] < first:
                emit(heapq.heappop(waiting))
            for fire in (first, *second):
                heapq.heappush(waiting, fire)
        while waiting:
            emit(heapq.heappop(waiting))
        return found

    def _start(self, instant: datetime) -> datetime:
        """The wall time to iterate from: that of `instant`, or earlier by the change when the
        clocks go back within the next two hours (wall times about to repeat may lie behind
        it, and their second occurrence ahead)."""
        local = instant.astimezone(self.zone)
        later = (instant + timedelta(hours=2)).astimezone(self.zone)
        start = local.replace(tzinfo=None)
        now_offset, later_offset = local.utcoffset(), later.utcoffset()
        if now_offset is not None and later_offset is not None and later_offset < now_offset:
            start -= now_offset - later_offset
        return start

    def _instants(self, wall: datetime) -> list[datetime]:
        first = wall.replace(tzinfo=self.zone, fold=0)
        second = wall.replace(tzinfo=self.zone, fold=1)
        instants = [first.astimezone(UTC)]
        repeated = first.utcoffset() != second.utcoffset() and _exists(second)
        if repeated and self._hourly:
            instants.append(second.astimezone(UTC))
        return instants

    def next_after(self, instant: datetime) -> datetime | None:
        fires = self.after(instant, 1)
        return fires[0] if fires else None


def _exists(local: datetime) -> bool:
    """False for a wall time a daylight-saving change skips."""
    return local.astimezone(UTC).astimezone(local.tzinfo).replace(fold=0) == local.replace(fold=0)


def _checked_cron(cron: str) -> str:
    check_text(cron, "cron")
    if len(cron) > MAX_CRON_LENGTH:  # as sent, as REST counts it
        raise InvalidArgument("cron", f"must be at most {MAX_CRON_LENGTH} characters")
    cron = " ".join(cron.split())
    if not cron:
        raise InvalidArgument("cron", "is required")
    if cron.startswith("@"):
        if cron not in NAMES:
            raise InvalidArgument("cron", f"{cron!r} is not one of {', '.join(NAMES)}")
        return cron
    fields = cron.split()
    if len(fields) not in (5, 6):
        raise InvalidArgument(
            "cron", "needs five fields (minute hour day month weekday), or six with seconds first"
        )
    if not croniter.is_valid(cron, second_at_beginning=len(fields) == 6):
        raise InvalidArgument("cron", f"{cron!r} is not a valid cron expression")
    return cron


def _zone(name: str) -> ZoneInfo:
    check_text(name, "time_zone")
    if len(name) > MAX_TIME_ZONE_LENGTH:
        raise InvalidArgument("time_zone", f"must be at most {MAX_TIME_ZONE_LENGTH} characters")
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument("time_zone", f"{name[:64]!r} is not an IANA time zone") from None


def fires_due(schedule: Schedule, now: datetime) -> tuple[list[datetime], datetime | None]:
    """The fires of a schedule due by `now` that are within its catch-up window (older ones
    are skipped), and the fire time after them."""
    spec = schedule.spec
    times = CronTimes(spec.cron, _zone(spec.time_zone))
    first = schedule.next_fire_time
    if first is None or first > now:
        return [], first
    earliest = now - max(spec.catchup_window, CATCHUP_GRACE)
    if first < earliest:  # a long outage: jump to the window rather than walk through it
        first = times.next_after(earliest - timedelta(microseconds=1))
    fires: list[datetime] = []
    while first is not None and first <= now and len(fires) < MAX_FIRES_PER_PASS:
        fires.append(first)
        first = times.next_after(first)
    return fires, first


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


class ScheduleRepository(Protocol):
    """Durable storage of a tenant's schedules."""

    async def create(self, tenant: str, spec: ScheduleSpec, next_fire: datetime | None) -> Schedule:
        """Stores a schedule; without a next fire time, it is paused."""
        ...

    async def get(self, tenant: str, schedule_id: uuid.UUID) -> Schedule | None: ...

    async def list(self, tenant: str, limit: int, after: ResourcePosition | None) -> list[Schedule]:
        """Up to `limit` schedules, oldest first, after the position `after`."""
        ...

    async def update(
        self,
        tenant: str,
        schedule_id: uuid.UUID,
        spec: ScheduleSpec,
        fields: frozenset[str],
        next_fire: datetime | None,
    ) -> Schedule | None:
        """Writes the named fields; with next_fire, the schedule fires from then on."""
        ...

    async def delete(self, tenant: str, schedule_id: uuid.UUID) -> bool: ...

    async def set_paused(
        self, tenant: str, schedule_id: uuid.UUID, paused: bool, next_fire: datetime | None
    ) -> Schedule | None: ...

    async def fired(
        self, tenant: str, schedule_id: uuid.UUID, fire_time: datetime, task_id: uuid.UUID
    ) -> None:
        """Records a fire made outside the dispatcher's pass (TriggerSchedule)."""
        ...

    def due(self, limit: int) -> AbstractAsyncContextManager[DueSchedules]:
        """A transaction holding up to `limit` due schedules (and those with a buffered fire
        whose task has finished) against every other dispatcher."""
        ...


class DueSchedules(Protocol):
    """Due schedules held by one dispatcher until the end of the pass."""

    now: datetime
    schedules: list[Schedule]

    async def has_live_task(self, schedule_id: uuid.UUID) -> bool: ...

    async def advance(
        self,
        schedule_id: uuid.UUID,
        next_fire: datetime | None,
        buffered: datetime | None,
        last_fire: datetime | None,
        last_task_id: uuid.UUID | None,
    ) -> None: ...


class ScheduleManager:
    """The use cases of schedules; tasks are made by the TaskManager, as a call would."""

    def __init__(self, repository: ScheduleRepository, tasks: TaskManager) -> None:
        self._repository = repository
        self._tasks = tasks

    async def _validated(self, caller: Caller, spec: ScheduleSpec) -> tuple[ScheduleSpec, datetime]:
        times = CronTimes.parse(spec.cron, spec.time_zone)
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
        next_fire = CronTimes(current.spec.cron, _zone(current.spec.time_zone)).next_after(
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
    times = CronTimes(schedule.spec.cron, _zone(schedule.spec.time_zone))
    first = schedule.next_fire_time
    return [first, *times.after(first, count - 1)]


class ScheduleFirer:
    """The dispatcher's side: fires what is due, once per fire time across every dispatcher
    (a schedule is held by one dispatcher at a time, and a fire's task has an idempotency
    key of its own)."""

    def __init__(self, repository: ScheduleRepository, tasks: TaskManager) -> None:
        self._repository = repository
        self._tasks = tasks

    async def fire_due(self, limit: int) -> int:
        """Returns how many tasks the pass made."""
        made = 0
        async with self._repository.due(limit) as due:
            for schedule in due.schedules:
                made += await self._fire(due, schedule)
        return made

    async def _fire(self, due: DueSchedules, schedule: Schedule) -> int:
        caller = Caller(schedule.tenant, frozenset({WRITE_SCOPE, READ_SCOPE}))
        fires, next_fire = fires_due(schedule, due.now)
        buffered = schedule.buffered_fire_time
        if buffered is not None and not await due.has_live_task(schedule.id):
            fires = [buffered, *fires]
            buffered = None
        last_fire, last_task = schedule.last_fire_time, schedule.last_task_id
        made = 0
        for fire_time in fires:
            overlap = schedule.spec.overlap
            if overlap is not Overlap.ALLOW and await due.has_live_task(schedule.id):
                if overlap is Overlap.BUFFER_ONE:
                    buffered = fire_time
                else:
                    log.info(
                        "schedule %s: fire %s skipped (a run is unfinished)", schedule.id, fire_time
                    )
                continue
            task = await self._make(caller, schedule, fire_time)
            if task is not None:
                last_fire, last_task = fire_time, task.id
                made += 1
        await due.advance(schedule.id, next_fire, buffered, last_fire, last_task)
        return made

    async def _make(self, caller: Caller, schedule: Schedule, fire_time: datetime) -> Task | None:
        try:
            return await self._tasks.schedule(caller, request_for(schedule, fire_time))
        except (StorageUnavailable, BrokerUnavailable):
            raise  # the pass fails and the fire is tried again: never dropped for an outage
        except DomainError as error:  # a kind or queue gone since: the fire cannot make a task
            log.error("schedule %s: fire %s made no task: %s", schedule.id, fire_time, error)
            return None


def _parse_id(value: str) -> uuid.UUID:
    return parse_task_id(value, "id")


def _found(schedule: Schedule | None, schedule_id: str) -> Schedule:
    if schedule is None:
        raise ScheduleNotFound(schedule_id)
    return schedule
