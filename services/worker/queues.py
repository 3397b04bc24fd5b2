"""Which Celery queues a worker consumes: the ones it is given, or every queue, new ones
included, found in PostgreSQL as they are created (a NOTIFY says when, a poll backs it up)."""

from __future__ import annotations

import logging
import threading
from typing import Any, ClassVar

import psycopg
from celery import Celery, bootsteps

from taskscheduler.adapters.broker import celery_queue_name
from taskscheduler.adapters.postgres.schema import WAKE_CHANNEL
from taskscheduler.settings import Settings

log = logging.getLogger("taskscheduler.worker")


def serve_queues(app: Celery, settings: Settings) -> None:
    """With TASKSCHED_WORKER_QUEUES, the worker serves those queues only (as Celery's -Q would);
    without, it serves every queue."""
    if settings.worker_queues:
        app.amqp.queues.select(
            [celery_queue_name(settings, name) for name in settings.worker_queues]
        )
        return
    QueueWatcher.settings = settings
    app.steps["consumer"].add(QueueWatcher)


APPLY_EVERY_SECONDS = 0.2


class QueueWatcher(bootsteps.StartStopStep):  # type: ignore[misc]
    """Looks for queue names in a thread of its own (a slow database must not stall the
    consumer), when one is created and every TASKSCHED_WORKER_QUEUE_WATCH_SECONDS, and starts
    consuming from new ones on the consumer's own timer."""

    requires: ClassVar = {"celery.worker.consumer.tasks:Tasks"}
    settings: ClassVar[Settings]

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._names: frozenset[str] = frozenset()
        self._stopping = threading.Event()
        self._timer: Any = None

    def start(self, c: Any) -> None:
        # Celery keeps the queues chosen with -Q here (None without -Q); it has no public
        # accessor for the difference.
        if c.app.amqp.queues._consume_from is not None:
            return
        # Celery stops and starts the same step on a broker reconnect: a fresh event each time.
        self._stopping = threading.Event()
        self._read_names()
        self._apply(c)
        stopping = self._stopping
        threading.Thread(
            target=self._watch, args=(stopping,), name="queue-watcher", daemon=True
        ).start()
        self._timer = c.timer.call_repeatedly(APPLY_EVERY_SECONDS, self._apply, (c,), priority=10)

    def stop(self, c: Any) -> None:
        self._stopping.set()
        if self._timer is not None:
            self._timer.cancel()

    def _watch(self, stopping: threading.Event) -> None:
        interval = self.settings.worker_queue_watch_seconds
        while not stopping.is_set():
            try:
                with psycopg.connect(
                    self.settings.libpq_url, connect_timeout=5, autocommit=True
                ) as conn:
                    conn.execute(f"LISTEN {WAKE_CHANNEL}")
                    while not stopping.is_set():
                        self._names = _queue_names(conn, self.settings)
                        for _ in conn.notifies(timeout=interval, stop_after=1):
                            pass  # a queue may have been created: read the names again
            except psycopg.Error as exc:
                log.warning("queue names not read (%s); trying again", exc)
                stopping.wait(interval)

    def _read_names(self) -> None:
        try:
            with psycopg.connect(self.settings.libpq_url, connect_timeout=5) as conn:
                self._names = _queue_names(conn, self.settings)
        except psycopg.Error as exc:
            log.warning("queue names not read (%s); trying again", exc)

    def _apply(self, c: Any) -> None:
        for name in sorted(self._names):
            if not c.task_consumer.consuming_from(name):
                c.add_task_queue(name)


def _queue_names(conn: psycopg.Connection[Any], settings: Settings) -> frozenset[str]:
    rows = conn.execute("SELECT DISTINCT name FROM queues").fetchall()
    return frozenset(celery_queue_name(settings, row[0]) for row in rows)
