"""Cron arithmetic: the fire times of a cron expression in a time zone (daylight saving
included), and the reading of an expression and a zone."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from taskscheduler.core.errors import InvalidArgument
from taskscheduler.core.payloads import check_text

NAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_SEARCH_LIMIT = 100_000  # cron steps searched for a next fire before calling it never


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
        """A caller's expression and zone, checked; InvalidArgument names the field."""
        times = cls(_checked_cron(cron), zone(time_zone))
        if not times.after(datetime.now(UTC), 1):
            raise InvalidArgument("cron", "never fires")
        return times

    @classmethod
    def of(cls, cron: str, time_zone: str) -> CronTimes:
        """The times of an expression already checked (a stored schedule's)."""
        return cls(cron, zone(time_zone))

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


def normalized(cron: str) -> str:
    """The expression with its fields separated by single spaces."""
    check_text(cron, "cron")
    return " ".join(cron.split())


def _checked_cron(cron: str) -> str:
    cron = normalized(cron)
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


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (empty: UTC)."""
    check_text(name, "time_zone")
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument("time_zone", f"{name[:64]!r} is not an IANA time zone") from None
