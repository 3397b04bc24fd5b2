"""The dispatcher's side of schedules: the fires due in a pass, one task per fire."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from taskscheduler.core.cron import CronTimes
from taskscheduler.core.errors import BrokerUnavailable, DomainError, StorageUnavailable
from taskscheduler.core.model import READ_SCOPE, WRITE_SCOPE, Caller, Overlap, Schedule, Task
from taskscheduler.core.ports import DueSchedules, ScheduleRepository
from taskscheduler.core.schedules import CATCHUP_GRACE, MAX_FIRES_PER_PASS, request_for
from taskscheduler.core.tasks import TaskManager

log = logging.getLogger("taskscheduler.schedules")


def fires_due(schedule: Schedule, now: datetime) -> tuple[list[datetime], datetime | None]:
    """The fires of a schedule due by `now` that are within its catch-up window (older ones
    are skipped), and the fire time after them."""
    spec = schedule.spec
    times = CronTimes.of(spec.cron, spec.time_zone)
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
