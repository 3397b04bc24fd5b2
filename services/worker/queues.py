"""Which Celery queues a worker consumes: the ones it is given, or every queue, new ones
included, found in PostgreSQL as they are created."""

from __future__ import annotations

import logging
import threading
from typing import Any, ClassVar

import psycopg
from celery import Celery, bootsteps

from taskscheduler.adapters.broker import celery_queue_name
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


class QueueWatcher(bootsteps.StartStopStep):  # type: ignore[misc]
    """Looks for queue names in a thread of its own (a slow database must not stall the
    consumer) and starts consuming from new ones on the consumer's own timer."""

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
        interval = self.settings.worker_queue_watch_seconds
        # Celery stops and starts the same step on a broker reconnect: a fresh event each time.
        self._stopping = threading.Event()
        self._read_names()
        self._apply(c)
        stopping = self._stopping
        threading.Thread(
            target=self._watch, args=(stopping,), name="queue-watcher", daemon=True
        ).start()
        self._timer = c.timer.call_repeatedly(interval, self._apply, (c,), priority=10)

    def stop(self, c: Any) -> None:
        self._stopping.set()
        if self._timer is not None:
            self._timer.cancel()

    def _watch(self, stopping: threading.Event) -> None:
        while not stopping.wait(self.settings.worker_queue_watch_seconds):
            self._read_names()

    def _read_names(self) -> None:
        try:
            with psycopg.connect(self.settings.libpq_url, connect_timeout=5) as conn:
                rows = conn.execute("SELECT DISTINCT name FROM queues").fetchall()
        except psycopg.Error as exc:
            log.warning("queue names not read (%s); trying again", exc)
            return
        self._names = frozenset(celery_queue_name(self.settings, row[0]) for row in rows)

    def _apply(self, c: Any) -> None:
        for name in sorted(self._names):
            if not c.task_consumer.consuming_from(name):
                c.add_task_queue(name)
