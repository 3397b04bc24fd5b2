"""Flow control across processes: queues paused, purged and rate-limited, concurrency keys,
priorities and cron schedules, with several dispatchers and workers running."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from google.protobuf import field_mask_pb2

from taskscheduler.settings import Settings
from taskscheduler.v1 import queue_pb2, schedule_pb2, task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests.helpers import request, wait_until
from tests.servers import ServiceProcess, start_dispatcher, start_worker

DB = psycopg.Connection[tuple[Any, ...]]


@pytest.fixture(scope="module")
def processes(settings: Settings, log_dir: Path) -> Iterator[list[ServiceProcess]]:
    """Two dispatchers and two workers of concurrency 4, serving every queue. The workers do
    not poll for new queues here: the NOTIFY of a queue's creation alone must bring them."""
    started = [start_dispatcher(settings, log_dir), start_dispatcher(settings, log_dir)]
    no_polling = settings.model_copy(update={"worker_queue_watch_seconds": 3600})
    try:
        started += [start_worker(no_polling, log_dir, concurrency=4) for _ in range(2)]
        yield started
    finally:
        for process in started:
            process.stop()


pytestmark = pytest.mark.usefixtures("processes")


async def new_queue(stub: TaskServiceStub, **settings: Any) -> str:
    name = f"q-{uuid.uuid4().hex[:8]}"
    await stub.CreateQueue(pb.CreateQueueRequest(queue=queue_pb2.Queue(name=name, **settings)))
    return name


async def schedule_many(
    stub: TaskServiceStub, queue: str, payloads: list[dict[str, Any]], **fields: object
) -> list[task_pb2.Task]:
    items = []
    for payload in payloads:
        item = request("demo.sleep", payload)
        item.queue = queue
        for name, value in fields.items():
            setattr(item, name, value)
        items.append(item)
    response = await stub.BatchScheduleTasks(pb.BatchScheduleTasksRequest(requests=items))
    return list(response.tasks)


def unfinished(db: DB, queue: str) -> int:
    row = db.execute(
        "SELECT count(*) FROM tasks WHERE queue = %s "
        "AND status NOT IN ('SUCCESS', 'FAILED', 'CANCELLED')",
        (queue,),
    ).fetchone()
    assert row is not None
    return int(row[0])


async def all_finished(db: DB, queue: str, within: float = 60) -> None:
    await wait_until(lambda: unfinished(db, queue) == 0, within=within)


def attempts_of(db: DB, queue: str) -> list[tuple[datetime, datetime, str, int]]:
    """(start, finish, concurrency key, priority) of every attempt of the queue, by start."""
    rows = db.execute(
        "SELECT a.started_at, a.finished_at, coalesce(t.concurrency_key, ''), t.priority "
        "FROM task_attempts a JOIN tasks t ON t.id = a.task_id WHERE t.queue = %s "
        "ORDER BY a.started_at",
        (queue,),
    ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def test_a_paused_queue_starts_nothing_then_runs_everything_on_resume(
    stub: TaskServiceStub, db: DB
) -> None:
    queue = await new_queue(stub)
    paused = (await stub.PauseQueue(pb.PauseQueueRequest(name=queue))).queue
    assert paused.state == queue_pb2.QUEUE_STATE_PAUSED
    tasks = await schedule_many(stub, queue, [{"seconds": 0.05}] * 20)
    await asyncio.sleep(2)  # two dispatchers and eight worker processes, all idle
    assert attempts_of(db, queue) == []
    waiting = (await stub.GetQueue(pb.GetQueueRequest(name=queue))).queue
    assert (waiting.waiting_count, waiting.running_count) == (20, 0)
    await stub.ResumeQueue(pb.ResumeQueueRequest(name=queue))
    await all_finished(db, queue)
    finals = [(await stub.GetTask(pb.GetTaskRequest(task_id=t.id))).task for t in tasks]
    assert {task.status for task in finals} == {task_pb2.TASK_STATUS_SUCCESS}


async def test_a_pause_stops_a_flowing_queue_within_a_second(stub: TaskServiceStub, db: DB) -> None:
    queue = await new_queue(stub)
    await schedule_many(stub, queue, [{"seconds": 0.1}] * 200)
    await wait_until(lambda: len(attempts_of(db, queue)) >= 10)
    paused = (await stub.PauseQueue(pb.PauseQueueRequest(name=queue))).queue
    paused_at = paused.update_time.ToDatetime().astimezone()
    await asyncio.sleep(2)
    starts = [start for start, *_ in attempts_of(db, queue)]
    assert max(starts) <= paused_at + timedelta(seconds=1)
    assert len(starts) < 200  # most are still waiting, PENDING
    purged = await stub.PurgeQueue(pb.PurgeQueueRequest(name=queue))
    assert purged.cancelled_count == 200 - len(starts)
    await all_finished(db, queue)
    statuses = Counter(
        r[0] for r in db.execute("SELECT status FROM tasks WHERE queue = %s", (queue,))
    )
    assert statuses == {"SUCCESS": len(starts), "CANCELLED": 200 - len(starts)}


@pytest.mark.timeout(120)
async def test_a_rate_limit_holds_across_two_dispatchers(stub: TaskServiceStub, db: DB) -> None:
    rate, burst = 20, 5
    queue = await new_queue(stub, rate_limit=queue_pb2.RateLimit(per_second=rate, burst=burst))
    await stub.PauseQueue(pb.PauseQueueRequest(name=queue))
    await schedule_many(stub, queue, [{"seconds": 0}] * 400)
    await stub.ResumeQueue(pb.ResumeQueueRequest(name=queue))
    await all_finished(db, queue, within=60)
    dispatched = sorted(
        row[0] for row in db.execute("SELECT dispatched_at FROM tasks WHERE queue = %s", (queue,))
    )
    window = timedelta(seconds=5)
    busiest = max(
        sum(1 for other in dispatched[i:] if other < start + window)
        for i, start in enumerate(dispatched)
    )
    assert busiest <= rate * 5 + burst
    elapsed = (dispatched[-1] - dispatched[0]).total_seconds()
    assert (400 - burst) / rate - 1 <= elapsed  # the limit did hold them back


async def test_no_key_runs_more_than_its_limit_and_every_key_progresses(
    stub: TaskServiceStub, db: DB
) -> None:
    queue = await new_queue(stub, max_concurrent_per_key=2)
    await stub.PauseQueue(pb.PauseQueueRequest(name=queue))
    for key in ("alpha", "beta", "gamma"):
        await schedule_many(stub, queue, [{"seconds": 0.2}] * 30, concurrency_key=key)
    await stub.ResumeQueue(pb.ResumeQueueRequest(name=queue))
    await all_finished(db, queue)
    attempts = attempts_of(db, queue)
    assert len(attempts) == 90
    for key in ("alpha", "beta", "gamma"):
        spans = [(start, finish) for start, finish, k, _ in attempts if k == key]
        most = max(sum(1 for s, f in spans if s <= start < f) for start, _ in spans)
        assert most <= 2, key
    assert {key for _, _, key, _ in attempts[:6]} == {"alpha", "beta", "gamma"}


async def test_higher_priorities_start_first_under_a_backlog(stub: TaskServiceStub, db: DB) -> None:
    queue = await new_queue(stub, max_concurrent=1)
    await stub.PauseQueue(pb.PauseQueueRequest(name=queue))
    priorities = [3, 9, 0, 5, 9, 1, 7, 5, 2, 8]
    for priority in priorities:
        await schedule_many(stub, queue, [{"seconds": 0.02}], priority=priority)
    await stub.ResumeQueue(pb.ResumeQueueRequest(name=queue))
    await all_finished(db, queue)
    started = [priority for *_, priority in attempts_of(db, queue)]
    assert started == sorted(priorities, reverse=True)


async def test_an_unknown_queue_is_an_invalid_argument(stub: TaskServiceStub) -> None:
    item = request("demo.echo")
    item.queue = "no-such-queue"
    with pytest.raises(Exception, match="queue") as excinfo:
        await stub.ScheduleTask(item)
    assert "INVALID_ARGUMENT" in str(excinfo.value)


def every_second(
    overlap: schedule_pb2.OverlapPolicy.ValueType, kind: str, payload: dict[str, Any]
) -> schedule_pb2.Schedule:
    template = schedule_pb2.TaskTemplate(kind=kind)
    template.payload.update(payload)
    schedule = schedule_pb2.Schedule(cron="* * * * * *", task=template, overlap=overlap)
    schedule.catchup_window.FromTimedelta(timedelta(seconds=30))
    return schedule


def fire_times(db: DB, schedule_id: str) -> list[datetime]:
    rows = db.execute(
        "SELECT fire_time FROM tasks WHERE schedule_id = %s ORDER BY fire_time", (schedule_id,)
    ).fetchall()
    return [row[0] for row in rows]


@pytest.mark.timeout(150)
async def test_a_schedule_fires_once_per_second_with_three_dispatchers(
    stub: TaskServiceStub, db: DB, settings: Settings, log_dir: Path
) -> None:
    third = start_dispatcher(settings, log_dir)
    try:
        created = await stub.CreateSchedule(
            pb.CreateScheduleRequest(
                schedule=every_second(schedule_pb2.OVERLAP_POLICY_ALLOW, "demo.echo", {})
            )
        )
        schedule_id = created.schedule.id
        assert len(created.schedule.next_fire_times) == 5
        await asyncio.sleep(60)
        await stub.PauseSchedule(pb.PauseScheduleRequest(id=schedule_id))
    finally:
        third.stop()
    fires = fire_times(db, schedule_id)
    assert len(fires) >= 58
    assert len(set(fires)) == len(fires)  # one task per fire time
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(fires)}
    assert gaps == {1.0}  # none missed
    listed = await stub.ListTasks(pb.ListTasksRequest(schedule_id=schedule_id, page_size=1000))
    assert len(listed.tasks) == len(fires)


async def test_skip_overlap_never_runs_two_fires_at_once(stub: TaskServiceStub, db: DB) -> None:
    created = await stub.CreateSchedule(
        pb.CreateScheduleRequest(
            schedule=every_second(schedule_pb2.OVERLAP_POLICY_SKIP, "demo.sleep", {"seconds": 2.5})
        )
    )
    schedule_id = created.schedule.id
    await asyncio.sleep(8)
    await stub.PauseSchedule(pb.PauseScheduleRequest(id=schedule_id))
    rows = db.execute(
        "SELECT created_at, coalesce(finished_at, now()) FROM tasks WHERE schedule_id = %s "
        "ORDER BY created_at",
        (schedule_id,),
    ).fetchall()
    assert 2 <= len(rows) <= 4  # about one run per 2.5 s, not eight
    for (_, finished), (created_next, _) in itertools.pairwise(rows):
        assert created_next >= finished


async def test_trigger_fires_now_and_records_the_schedule_on_the_task(
    stub: TaskServiceStub,
) -> None:
    schedule = every_second(schedule_pb2.OVERLAP_POLICY_SKIP, "demo.echo", {"hello": "cron"})
    schedule.cron = "0 0 1 1 *"
    created = (await stub.CreateSchedule(pb.CreateScheduleRequest(schedule=schedule))).schedule
    task = (await stub.TriggerSchedule(pb.TriggerScheduleRequest(id=created.id))).task
    assert task.schedule_id == created.id and task.HasField("fire_time")
    assert dict(task.payload) == {"hello": "cron"}
    again = (await stub.GetSchedule(pb.GetScheduleRequest(id=created.id))).schedule
    assert again.last_task_id == task.id


async def test_a_schedule_update_names_its_fields(stub: TaskServiceStub) -> None:
    schedule = every_second(schedule_pb2.OVERLAP_POLICY_SKIP, "demo.echo", {})
    schedule.cron = "0 0 1 1 *"
    created = (await stub.CreateSchedule(pb.CreateScheduleRequest(schedule=schedule))).schedule
    change = schedule_pb2.Schedule(id=created.id, cron="30 9 * * 1-5", time_zone="Asia/Tokyo")
    mask = field_mask_pb2.FieldMask(paths=["cron", "time_zone"])
    updated = (
        await stub.UpdateSchedule(pb.UpdateScheduleRequest(schedule=change, update_mask=mask))
    ).schedule
    assert (updated.cron, updated.time_zone, updated.task.kind) == (
        "30 9 * * 1-5",
        "Asia/Tokyo",
        "demo.echo",
    )
    first = updated.next_fire_times[0].ToDatetime()
    assert (first.hour, first.minute) == (0, 30)  # 09:30 in Tokyo is 00:30 UTC
    bad = schedule_pb2.Schedule(id=created.id, cron="99 * * * *")
    with pytest.raises(Exception, match="cron"):
        await stub.UpdateSchedule(
            pb.UpdateScheduleRequest(
                schedule=bad, update_mask=field_mask_pb2.FieldMask(paths=["cron"])
            )
        )


async def test_buffer_one_runs_the_kept_fire_as_soon_as_the_run_ends(
    stub: TaskServiceStub, db: DB
) -> None:
    schedule = every_second(schedule_pb2.OVERLAP_POLICY_BUFFER_ONE, "demo.sleep", {"seconds": 3})
    schedule.cron = "*/2 * * * * *"  # a fire every 2 s, a run of 3 s
    created = await stub.CreateSchedule(pb.CreateScheduleRequest(schedule=schedule))
    schedule_id = created.schedule.id
    await asyncio.sleep(10)
    await stub.PauseSchedule(pb.PauseScheduleRequest(id=schedule_id))
    rows = db.execute(
        "SELECT created_at, finished_at FROM tasks WHERE schedule_id = %s ORDER BY created_at",
        (schedule_id,),
    ).fetchall()
    assert 2 <= len(rows) <= 4  # back to back, not one a fire
    for (_, finished), (created_next, _) in itertools.pairwise(rows):
        assert finished is not None
        assert timedelta(0) <= created_next - finished < timedelta(seconds=1)
