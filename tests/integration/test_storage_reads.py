"""The reads behind the metrics' gauges and a worker's queue watch, on a real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from taskscheduler.adapters.postgres.engine import make_sync_engine
from taskscheduler.adapters.postgres.gauges import PostgresGauges, QueueDepth
from taskscheduler.adapters.postgres.queue_names import PostgresQueueNames
from taskscheduler.adapters.postgres.schema import WAKE_CHANNEL
from taskscheduler.core.errors import StorageUnavailable
from taskscheduler.core.model import TaskStatus as S
from taskscheduler.devstack.embedded import free_port
from taskscheduler.settings import Settings

Db = psycopg.Connection[tuple[object, ...]]
T = "tenant-gauges"


def insert_task(db: Db, status: S, queue: str = "default") -> None:
    db.execute(
        "INSERT INTO tasks (id, status, tenant, queue, kind, payload, max_attempts, "
        "initial_backoff_seconds, max_backoff_seconds, backoff_multiplier, jitter, run_at) "
        "VALUES (%s, %s, %s, %s, 'demo.echo', '{}', 3, 1, 60, 2, false, now())",
        (uuid.uuid4(), status.value, T, queue),
    )


@pytest.fixture
def gauges(settings: Settings) -> Iterator[PostgresGauges]:
    engine = make_sync_engine(settings)
    yield PostgresGauges(engine)
    engine.dispose()


def unreachable(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/none"}
    )


def test_live_tasks_are_counted_by_status_every_live_status_present(
    gauges: PostgresGauges, db: Db
) -> None:
    for status in (S.PENDING, S.PENDING, S.RETRYING, S.SUCCESS):
        insert_task(db, status)
    assert gauges.live_tasks() == {S.SCHEDULED: 0, S.PENDING: 2, S.RUNNING: 0, S.RETRYING: 1}


def test_queue_depths_count_waiting_and_running_tasks_with_the_queue_state(
    gauges: PostgresGauges, db: Db
) -> None:
    db.execute("INSERT INTO queues (tenant, name, state) VALUES (%s, 'reports', 'PAUSED')", (T,))
    for status in (S.PENDING, S.SCHEDULED, S.SUCCESS):
        insert_task(db, status, "reports")
    depths = [depth for depth in gauges.queue_depths() if depth.tenant == T]
    assert depths == [QueueDepth(T, "reports", "PAUSED", waiting=2, running=0)]


def test_gauges_without_a_database_raise_storage_unavailable(settings: Settings) -> None:
    engine = make_sync_engine(unreachable(settings))
    try:
        with pytest.raises(StorageUnavailable):
            PostgresGauges(engine).live_tasks()
        with pytest.raises(StorageUnavailable):
            PostgresGauges(engine).queue_depths()
    finally:
        engine.dispose()


def test_queue_names_are_read_again_when_a_queue_is_created(settings: Settings, db: Db) -> None:
    """The watch yields the names, then again on the wake channel's NOTIFY, long before its
    interval is up."""
    names = PostgresQueueNames(settings.libpq_url)
    stopping = threading.Event()
    watch = names.watch(interval=60, stopping=stopping)
    assert "mail" not in next(watch)
    db.execute("INSERT INTO queues (tenant, name) VALUES (%s, 'mail')", (T,))
    db.execute("SELECT pg_notify(%s, '')", (WAKE_CHANNEL,))
    assert "mail" in next(watch)
    assert "mail" in names.read()
    stopping.set()
    watch.close()


def test_queue_names_without_a_database_raise_storage_unavailable(settings: Settings) -> None:
    names = PostgresQueueNames(unreachable(settings).libpq_url)
    with pytest.raises(StorageUnavailable):
        names.read()
    with pytest.raises(StorageUnavailable):
        next(names.watch(interval=1, stopping=threading.Event()))
