"""Fire times of cron schedules: time zones, daylight-saving changes, catch-up windows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from taskscheduler.core.cron import CronTimes
from taskscheduler.core.errors import InvalidArgument
from taskscheduler.core.firer import fires_due
from taskscheduler.core.model import Schedule, ScheduleSpec, TaskTemplate


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_a_daily_time_follows_its_zone_across_the_spring_change() -> None:
    """Paris jumps from 02:00 to 03:00 on 2026-03-29: 02:30 does not exist that night."""
    times = CronTimes.parse("30 2 * * *", "Europe/Paris")
    fires = times.after(utc(2026, 3, 27, 12), 4)
    assert fires == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET (+01:00)
        utc(2026, 3, 29, 1, 30),  # the skipped 02:30 fires as 03:30 CEST, once
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST (+02:00)
        utc(2026, 3, 31, 0, 30),
    ]


def test_a_daily_time_fires_once_when_the_autumn_change_repeats_it() -> None:
    """Paris goes back from 03:00 to 02:00 on 2026-10-25: 02:30 happens twice."""
    fires = CronTimes.parse("30 2 * * *", "Europe/Paris").after(utc(2026, 10, 24, 12), 3)
    assert fires == [
        utc(2026, 10, 25, 0, 30),  # the first 02:30 (CEST); the second one does not fire
        utc(2026, 10, 26, 1, 30),  # 02:30 CET
        utc(2026, 10, 27, 1, 30),
    ]


def test_an_hourly_expression_keeps_firing_every_real_hour_across_both_changes() -> None:
    spring = CronTimes.parse("0 * * * *", "Europe/Paris").after(utc(2026, 3, 28, 23, 30), 4)
    assert spring == [utc(2026, 3, 29, h) for h in (0, 1, 2, 3)]
    autumn = CronTimes.parse("@hourly", "Europe/Paris").after(utc(2026, 10, 24, 23, 30), 4)
    assert autumn == [utc(2026, 10, 25, h) for h in (0, 1, 2, 3)]  # 02:00 twice


def test_every_fifteen_minutes_through_the_skipped_hour() -> None:
    fires = CronTimes.parse("*/15 * * * *", "Europe/Paris").after(utc(2026, 3, 29, 0, 50), 6)
    step = timedelta(minutes=15)
    assert fires == [utc(2026, 3, 29, 1, 0) + i * step for i in range(6)]


def test_seconds_field_and_names() -> None:
    start = utc(2026, 1, 1)
    assert CronTimes.parse("*/10 * * * * *", "UTC").after(start, 2) == [
        utc(2026, 1, 1, 0, 0, 10),
        utc(2026, 1, 1, 0, 0, 20),
    ]
    assert CronTimes.parse("@daily", "America/New_York").after(start, 1) == [utc(2026, 1, 1, 5)]


@pytest.mark.parametrize(
    ("cron", "zone", "field"),
    [
        ("", "UTC", "cron"),
        ("61 * * * *", "UTC", "cron"),
        ("* * *", "UTC", "cron"),
        ("@fortnightly", "UTC", "cron"),
        ("0 0 30 2 *", "UTC", "cron"),  # February 30th never comes
        ("* * * * *", "Mars/Olympus_Mons", "time_zone"),
    ],
)
def test_bad_expressions_and_zones_name_their_field(cron: str, zone: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as excinfo:
        CronTimes.parse(cron, zone)
    assert excinfo.value.field == field


def schedule_due_at(next_fire: datetime, catchup: timedelta) -> Schedule:
    spec = ScheduleSpec(cron="* * * * *", task=TaskTemplate("demo.echo"), catchup_window=catchup)
    return Schedule(uuid.uuid4(), "t", spec, False, next_fire, next_fire, next_fire)


def test_missed_fires_within_the_catchup_window_are_made_up_once_each() -> None:
    now = utc(2026, 1, 1, 12, 0, 30)
    schedule = schedule_due_at(utc(2026, 1, 1, 11), catchup=timedelta(minutes=3))
    fires, after = fires_due(schedule, now)
    assert fires == [utc(2026, 1, 1, 11, 58), utc(2026, 1, 1, 11, 59), utc(2026, 1, 1, 12)]
    assert after == utc(2026, 1, 1, 12, 1)


def test_nothing_is_due_before_the_next_fire() -> None:
    schedule = schedule_due_at(utc(2026, 1, 1, 12, 1), catchup=timedelta(minutes=1))
    assert fires_due(schedule, utc(2026, 1, 1, 12)) == ([], utc(2026, 1, 1, 12, 1))


def test_the_second_occurrence_of_a_repeated_hour_is_found_from_just_before_it() -> None:
    """From 02:59:59 CEST, the next hourly fire is the repeated 02:00 (CET), an hour later."""
    times = CronTimes.parse("0 * * * *", "Europe/Paris")
    assert times.after(utc(2026, 10, 25, 0, 59, 59), 2) == [
        utc(2026, 10, 25, 1),
        utc(2026, 10, 25, 2),
    ]
    assert times.after(utc(2026, 10, 25, 1, 30), 1) == [utc(2026, 10, 25, 2)]


def test_every_fifteen_minutes_through_the_repeated_hour_in_real_time_order() -> None:
    fires = CronTimes.parse("*/15 * * * *", "Europe/Paris").after(utc(2026, 10, 24, 23, 50), 9)
    step = timedelta(minutes=15)
    assert fires == [utc(2026, 10, 25, 0, 0) + i * step for i in range(9)]


def test_a_fire_a_moment_late_runs_even_with_no_catchup_window() -> None:
    schedule = schedule_due_at(utc(2026, 1, 1, 12), catchup=timedelta(0))
    fires, after = fires_due(schedule, utc(2026, 1, 1, 12, 0, 0) + timedelta(milliseconds=5))
    assert (fires, after) == ([utc(2026, 1, 1, 12)], utc(2026, 1, 1, 12, 1))
