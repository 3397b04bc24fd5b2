"""QueueManager, ScheduleManager and the schedule firer on the in-memory stores."""

from __future__ import annotations

from datetime import timedelta

import pytest

from taskscheduler.core.errors import (
    InvalidArgument,
    QueueExists,
    QueueInUse,
    QueueNotFound,
    ScheduleNotFound,
)
from taskscheduler.core.execution import Outcome
from taskscheduler.core.model import (
    DEFAULT_QUEUE,
    Overlap,
    QueueSettings,
    QueueState,
    ScheduleSpec,
    TaskFilter,
    TaskStatus,
    TaskTemplate,
)
from taskscheduler.core.tasks import ListRequest, ScheduleRequest
from taskscheduler.testing import InMemoryServices
from tests.unit.memory import CALLER, OTHER_TENANT, Clock

S = TaskStatus
EVERY_MINUTE = ScheduleSpec(cron="* * * * *", task=TaskTemplate("test.ok"))


async def test_queues_are_listed_by_name_page_by_page_default_included(
    app: InMemoryServices,
) -> None:
    for name in ("b", "a", "c"):
        await app.queues.create(CALLER, name, QueueSettings())
    first = await app.queues.list(CALLER, 2, "")
    second = await app.queues.list(CALLER, 2, first.next_page_token)
    names = [queue.name for queue in first.queues + second.queues]
    assert names == ["a", "b", "c", DEFAULT_QUEUE]
    assert second.next_page_token == ""
    assert [q.name for q in (await app.queues.list(OTHER_TENANT, 10, "")).queues] == ["default"]


async def test_a_queue_name_is_taken_once_and_default_always(app: InMemoryServices) -> None:
    await app.queues.create(CALLER, "mail", QueueSettings())
    with pytest.raises(QueueExists):
        await app.queues.create(CALLER, "mail", QueueSettings())
    with pytest.raises(QueueExists):
        await app.queues.create(CALLER, DEFAULT_QUEUE, QueueSettings())
    with pytest.raises(InvalidArgument) as excinfo:
        await app.queues.create(CALLER, "Not A Name", QueueSettings())
    assert excinfo.value.field == "queue.name"


async def test_an_update_changes_the_named_fields_only(app: InMemoryServices) -> None:
    await app.queues.create(CALLER, "mail", QueueSettings(max_concurrent=3))
    changed = await app.queues.update(
        CALLER,
        "mail",
        QueueSettings(max_concurrent=9, timeout=timedelta(seconds=5)),
        frozenset({"timeout"}),
    )
    assert (changed.settings.max_concurrent, changed.settings.timeout) == (3, timedelta(seconds=5))
    with pytest.raises(InvalidArgument) as excinfo:
        await app.queues.update(CALLER, "mail", QueueSettings(), frozenset({"name"}))
    assert excinfo.value.field == "update_mask"


async def test_a_pause_takes_back_tasks_let_through_and_a_resume_lets_them_go(
    app: InMemoryServices,
) -> None:
    task = await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.ok"))
    assert [message.task_id for message in app.database.dispatch()] == [task.id]
    paused = await app.queues.pause(CALLER, DEFAULT_QUEUE)
    assert (paused.state, paused.waiting) == (QueueState.PAUSED, 1)
    assert app.attempts.claim(task.id, "w", timedelta(seconds=30)) is None
    assert app.database.dispatch() == []
    await app.queues.resume(CALLER, DEFAULT_QUEUE)
    assert app.run_ready() != []
    assert (await app.tasks.get(CALLER, str(task.id))).status is S.SUCCESS


async def test_a_concurrency_cap_lets_through_as_many_as_it_allows(
    app: InMemoryServices,
) -> None:
    await app.queues.create(CALLER, "one", QueueSettings(max_concurrent=1))
    for _ in range(3):
        await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.ok", queue="one"))
    let_through = app.database.dispatch()
    assert len(let_through) == 1
    assert app.database.dispatch() == []  # the one let through holds the slot until it ends
    assert app.executor().execute(let_through[0].task_id) is Outcome.SUCCEEDED
    assert app.run_ready() == [Outcome.SUCCEEDED]
    queue = await app.queues.get(CALLER, "one")
    assert (queue.waiting, queue.running) == (1, 0)


async def test_purge_cancels_what_waits_and_delete_then_succeeds(app: InMemoryServices) -> None:
    await app.queues.create(CALLER, "mail", QueueSettings())
    task = await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.ok", queue="mail"))
    with pytest.raises(QueueInUse):
        await app.queues.delete(CALLER, "mail")
    _, purged = await app.queues.purge(CALLER, "mail")
    assert purged == 1
    cancelled = await app.tasks.get(CALLER, str(task.id))
    assert (cancelled.status, cancelled.error) == (S.CANCELLED, "cancelled by a purge of the queue")
    await app.queues.delete(CALLER, "mail")
    with pytest.raises(QueueNotFound):
        await app.queues.get(CALLER, "mail")
    with pytest.raises(QueueInUse):
        await app.queues.delete(CALLER, DEFAULT_QUEUE)


async def test_a_queue_that_schedules_use_cannot_be_deleted(app: InMemoryServices) -> None:
    await app.queues.create(CALLER, "nightly", QueueSettings())
    template = TaskTemplate("test.ok", queue="nightly")
    await app.schedules.create(CALLER, ScheduleSpec(cron="@daily", task=template))
    with pytest.raises(QueueInUse):
        await app.queues.delete(CALLER, "nightly")


async def test_a_schedule_is_checked_as_a_call_would_be(app: InMemoryServices) -> None:
    cases = [
        (ScheduleSpec(cron="61 * * * *", task=TaskTemplate("test.ok")), "cron"),
        (ScheduleSpec(cron="* " * 150, task=TaskTemplate("test.ok")), "cron"),
        (
            ScheduleSpec(cron="@daily", task=TaskTemplate("test.ok"), time_zone="Mars/X"),
            "time_zone",
        ),
        (ScheduleSpec(cron="@daily", task=TaskTemplate("no.such")), "task.kind"),
        (ScheduleSpec(cron="@daily", task=TaskTemplate("test.ok", queue="nope")), "task.queue"),
    ]
    for spec, field in cases:
        with pytest.raises(InvalidArgument) as excinfo:
            await app.schedules.create(CALLER, spec)
        assert excinfo.value.field == field
    too_long = ScheduleSpec(cron="* " * 150, task=TaskTemplate("test.ok"))
    with pytest.raises(InvalidArgument, match="at most 200 characters"):
        await app.schedules.create(CALLER, too_long)


async def test_schedules_page_in_creation_order(app: InMemoryServices, clock: Clock) -> None:
    made = []
    for _ in range(3):
        made.append(await app.schedules.create(CALLER, EVERY_MINUTE))
        clock.advance(timedelta(milliseconds=1))
    first, token = await app.schedules.list(CALLER, 2, "")
    second, last = await app.schedules.list(CALLER, 2, token)
    assert [s.id for s in first + second] == [s.id for s in made]
    assert last == ""
    assert (await app.schedules.list(OTHER_TENANT, 10, ""))[0] == []


async def test_a_due_fire_makes_one_task_and_the_schedule_moves_on(
    app: InMemoryServices, clock: Clock
) -> None:
    schedule = await app.schedules.create(CALLER, EVERY_MINUTE)
    assert schedule.next_fire_time is not None
    assert await app.firer.fire_due(10) == 0  # not due yet
    clock.now = schedule.next_fire_time + timedelta(seconds=1)
    assert await app.firer.fire_due(10) == 1
    assert await app.firer.fire_due(10) == 0  # that fire is made once
    after = await app.schedules.get(CALLER, str(schedule.id))
    assert after.next_fire_time == schedule.next_fire_time + timedelta(minutes=1)
    assert after.last_fire_time == schedule.next_fire_time
    made = await app.tasks.list(CALLER, ListRequest(TaskFilter(schedule_id=schedule.id)))
    assert [task.id for task in made.tasks] == [after.last_task_id]
    assert made.tasks[0].request_id == f"schedule:{schedule.id}:{after.last_fire_time.isoformat()}"


async def test_a_fire_is_skipped_or_buffered_while_the_last_run_is_unfinished(
    app: InMemoryServices, clock: Clock
) -> None:
    skip = await app.schedules.create(CALLER, EVERY_MINUTE)
    buffer = await app.schedules.create(
        CALLER,
        ScheduleSpec(cron="* * * * *", task=TaskTemplate("test.ok"), overlap=Overlap.BUFFER_ONE),
    )
    assert skip.next_fire_time is not None
    clock.now = skip.next_fire_time + timedelta(seconds=1)
    assert await app.firer.fire_due(10) == 2
    clock.advance(timedelta(minutes=1))
    assert await app.firer.fire_due(10) == 0  # both first tasks still wait
    buffered = await app.schedules.get(CALLER, str(buffer.id))
    assert buffered.buffered_fire_time == skip.next_fire_time + timedelta(minutes=1)
    assert (await app.schedules.get(CALLER, str(skip.id))).buffered_fire_time is None
    app.run_ready()  # the first tasks finish: the buffered fire is due at once
    assert await app.firer.fire_due(10) == 1
    assert (await app.schedules.get(CALLER, str(buffer.id))).buffered_fire_time is None


async def test_pause_resume_and_trigger(app: InMemoryServices, clock: Clock) -> None:
    schedule = await app.schedules.create(CALLER, EVERY_MINUTE)
    paused = await app.schedules.pause(CALLER, str(schedule.id))
    assert (paused.paused, paused.next_fire_time) == (True, None)
    clock.advance(timedelta(minutes=5))
    assert await app.firer.fire_due(10) == 0
    task = await app.schedules.trigger(CALLER, str(schedule.id))
    assert task.schedule_id == schedule.id
    resumed = await app.schedules.resume(CALLER, str(schedule.id))
    assert not resumed.paused and resumed.next_fire_time is not None
    assert resumed.last_task_id == task.id
    await app.schedules.delete(CALLER, str(schedule.id))
    with pytest.raises(ScheduleNotFound):
        await app.schedules.get(CALLER, str(schedule.id))
