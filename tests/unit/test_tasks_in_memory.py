"""The task use cases on the in-memory stores: idempotency, batches, paging, tenants, cancel,
counts and status streams, as they behave on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from taskscheduler.core.errors import (
    IdempotencyConflict,
    InvalidArgument,
    TaskFinished,
    TaskNotFinished,
    TaskNotFound,
)
from taskscheduler.core.model import Progress, ProgressEvent, TaskFilter, TaskStatus
from taskscheduler.core.tasks import ListRequest, ScheduleRequest
from taskscheduler.testing import InMemoryServices
from tests.unit.memory import CALLER, OTHER_TENANT, Clock

S = TaskStatus


async def test_a_task_is_stored_pending_and_read_back(app: InMemoryServices) -> None:
    task = await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.ok"))
    assert (task.status, task.attempt, task.version) == (S.PENDING, 0, 1)
    assert await app.tasks.get(CALLER, str(task.id)) == task


async def test_another_tenants_task_is_not_found(app: InMemoryServices) -> None:
    task = await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.ok"))
    with pytest.raises(TaskNotFound):
        await app.tasks.get(OTHER_TENANT, str(task.id))
    with pytest.raises(TaskNotFound):
        await app.tasks.cancel(OTHER_TENANT, str(task.id))
    listed = await app.tasks.list(OTHER_TENANT, ListRequest())
    assert listed.tasks == []


async def test_an_idempotency_key_gives_the_first_task_until_its_window_ends(
    app: InMemoryServices, clock: Clock
) -> None:
    request = ScheduleRequest(kind="test.ok", request_id="once")
    first = await app.tasks.schedule(CALLER, request)
    assert (await app.tasks.schedule(CALLER, request)).id == first.id
    assert (await app.tasks.schedule(OTHER_TENANT, request)).id != first.id  # keys are per tenant
    with pytest.raises(IdempotencyConflict):
        await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.fail", request_id="once"))
    clock.advance(timedelta(hours=2))  # past the window: the key names a new task
    assert (await app.tasks.schedule(CALLER, request)).id != first.id


async def test_a_batch_is_stored_all_or_none(app: InMemoryServices) -> None:
    await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.ok", request_id="taken"))
    batch = [
        ScheduleRequest(kind="test.ok"),
        ScheduleRequest(kind="test.fail", request_id="taken"),  # the key of another request
    ]
    with pytest.raises(IdempotencyConflict):
        await app.tasks.schedule_batch(CALLER, batch)
    assert len((await app.tasks.list(CALLER, ListRequest())).tasks) == 1
    with pytest.raises(InvalidArgument) as excinfo:
        await app.tasks.schedule_batch(CALLER, [ScheduleRequest(kind="test.ok", queue="nope")])
    assert excinfo.value.field == "requests[0].queue"


async def test_a_batch_repeating_a_key_stores_one_task(app: InMemoryServices) -> None:
    request = ScheduleRequest(kind="test.ok", request_id="twice")
    first, second = await app.tasks.schedule_batch(CALLER, [request, request])
    assert first.id == second.id
    again = await app.tasks.schedule_batch(CALLER, [request])
    assert again[0].id == first.id


async def test_pages_go_newest_first_without_gaps_or_repeats(
    app: InMemoryServices, clock: Clock
) -> None:
    scheduled = []
    for _ in range(7):
        scheduled.append(await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.ok")))
        clock.advance(timedelta(milliseconds=1))
    seen: list[str] = []
    token = ""
    while True:
        page = await app.tasks.list(CALLER, ListRequest(page_size=3, page_token=token))
        seen.extend(str(task.id) for task in page.tasks)
        token = page.next_page_token
        if not token:
            break
    assert seen == [str(task.id) for task in reversed(scheduled)]


async def test_a_listing_filters_by_status_and_kind(app: InMemoryServices) -> None:
    ok = await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.ok"))
    failing = await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.fail"))
    await app.tasks.cancel(CALLER, str(failing.id))
    by_kind = await app.tasks.list(CALLER, ListRequest(TaskFilter(kind="test.ok")))
    assert [task.id for task in by_kind.tasks] == [ok.id]
    cancelled = await app.tasks.list(CALLER, ListRequest(TaskFilter(frozenset({S.CANCELLED}))))
    assert [task.id for task in cancelled.tasks] == [failing.id]


async def test_cancel_ends_a_waiting_task_and_asks_a_running_one_to_stop(
    app: InMemoryServices,
) -> None:
    waiting = await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.ok"))
    cancelled = await app.tasks.cancel(CALLER, str(waiting.id))
    assert (cancelled.status, cancelled.version) == (S.CANCELLED, 2)
    with pytest.raises(TaskFinished):
        await app.tasks.cancel(CALLER, str(waiting.id))

    running = await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.ok"))
    app.database.dispatch()
    assert app.attempts.claim(running.id, "w", timedelta(seconds=30)) is not None
    asked = await app.tasks.cancel(CALLER, str(running.id))
    assert (asked.status, asked.cancel_requested) == (S.RUNNING, True)
    assert app.attempts.succeed(running.id, 1, "done")
    finished = await app.tasks.get(CALLER, str(running.id))
    assert (finished.status, finished.result) == (S.CANCELLED, None)
    assert [attempt.status for attempt in finished.attempts] == [S.CANCELLED]


async def test_counts_hold_live_tasks_and_those_finished_within_the_window(
    app: InMemoryServices, clock: Clock
) -> None:
    old = await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.ok"))
    await app.tasks.cancel(CALLER, str(old.id))
    clock.advance(timedelta(hours=2))
    await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.ok"))
    counts = await app.tasks.count(CALLER, timedelta(hours=1))
    assert (counts[S.PENDING], counts[S.CANCELLED]) == (1, 0)
    assert (await app.tasks.count(CALLER, timedelta(hours=3)))[S.CANCELLED] == 1


async def test_retry_copies_a_finished_task_only(app: InMemoryServices) -> None:
    task = await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.ok", payload={}))
    with pytest.raises(TaskNotFinished):
        await app.tasks.retry(CALLER, str(task.id))
    app.run_ready()
    copy = await app.tasks.retry(CALLER, str(task.id))
    assert (copy.id != task.id, copy.kind, copy.status) == (True, "test.ok", S.PENDING)


async def test_watch_streams_each_change_and_ends_after_a_terminal_one(
    app: InMemoryServices,
) -> None:
    task = await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.ok"))
    seen: list[TaskStatus] = []
    subscribed = asyncio.Event()

    async def watch() -> None:
        async for change in app.tasks.watch(CALLER, str(task.id)):
            assert not isinstance(change, ProgressEvent)
            seen.append(change[0].status)
            subscribed.set()  # the first event, the current state, comes once subscribed

    watching = asyncio.create_task(watch())
    await asyncio.wait_for(subscribed.wait(), 5)
    await asyncio.to_thread(app.run_ready)  # the worker's store writes from another thread
    await asyncio.wait_for(watching, 5)
    assert seen == [S.PENDING, S.RUNNING, S.SUCCESS]


async def test_progress_reports_are_throttled_streamed_between_statuses_and_kept(
    app: InMemoryServices,
) -> None:
    task = await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.progress"))
    seen: list[str | Progress] = []
    subscribed = asyncio.Event()

    async def watch() -> None:
        async for change in app.tasks.watch(CALLER, str(task.id)):
            if isinstance(change, ProgressEvent):
                seen.append(change.progress)
            else:
                seen.append(change[0].status.value)
            subscribed.set()

    watching = asyncio.create_task(watch())
    await asyncio.wait_for(subscribed.wait(), 5)
    await asyncio.to_thread(app.run_ready)
    await asyncio.wait_for(watching, 5)
    reports = [event for event in seen if isinstance(event, Progress)]
    assert seen[:2] == ["PENDING", "RUNNING"] and seen[-1] == "SUCCESS"
    assert seen[2:-1] == reports
    # The first report at once, the last when the handler returned: 1,000 calls, a few writes.
    assert 2 <= len(reports) <= 4
    assert (reports[0].done, reports[-1].done) == (1, 1000)
    assert reports[-1].total == 1000 and reports[-1].message == "item 1000"
    stored = await app.tasks.get(CALLER, str(task.id))
    assert stored.progress == reports[-1]


async def test_an_unknown_queue_is_refused_before_anything_is_stored(
    app: InMemoryServices,
) -> None:
    with pytest.raises(InvalidArgument) as excinfo:
        await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.ok", queue="nope"))
    assert excinfo.value.field == "queue"
    assert (await app.tasks.list(CALLER, ListRequest())).tasks == []
