"""What the dashboard's overviews read: the dead letters grouped by error type, and each queue's
last hour minute by minute (throughput, failures, wait for a worker)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from taskscheduler.core.limits import MAX_FAILURE_GROUPS
from taskscheduler.core.model import READ_SCOPE, Caller, TaskFilter
from taskscheduler.core.permissions import require
from taskscheduler.core.ports import ActivityCounts, FailureGroup, InsightsReader
from taskscheduler.core.tasks import check_filter

ACTIVITY_MINUTES = 60


@dataclass(frozen=True)
class QueueActivity:
    """One queue's last ACTIVITY_MINUTES minutes, oldest first, every minute present."""

    queue: str
    minutes: tuple[ActivityCounts, ...]


class Insights:
    """ListFailureGroups and GetActivity, tenant-scoped."""

    def __init__(self, reader: InsightsReader) -> None:
        self._reader = reader

    async def failure_groups(self, caller: Caller, kind: str, queue: str) -> list[FailureGroup]:
        require(caller, READ_SCOPE)
        check_filter(TaskFilter(kind=kind, queue=queue))
        return await self._reader.failure_groups(caller.tenant, kind, queue, MAX_FAILURE_GROUPS)

    async def activity(self, caller: Caller, queue: str) -> list[QueueActivity]:
        require(caller, READ_SCOPE)
        check_filter(TaskFilter(queue=queue))
        first, counted = await self._reader.activity(caller.tenant, queue, ACTIVITY_MINUTES)
        return every_minute(first, counted)


def every_minute(first: datetime, counted: list[ActivityCounts]) -> list[QueueActivity]:
    """Each queue of `counted`, by name, with a zero for each minute where nothing happened."""
    starts = [first + timedelta(minutes=offset) for offset in range(ACTIVITY_MINUTES)]
    by_queue: dict[str, dict[datetime, ActivityCounts]] = {}
    for counts in counted:
        by_queue.setdefault(counts.queue, {})[counts.minute] = counts
    return [
        QueueActivity(
            queue,
            tuple(minutes.get(start) or ActivityCounts(queue, start) for start in starts),
        )
        for queue, minutes in sorted(by_queue.items())
    ]
