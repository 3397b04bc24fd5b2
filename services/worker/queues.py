"""Which Celery queues a worker consumes: the ones it is given, or every queue, new ones
included, found in PostgreSQL as they are created (a NOTIFY says when, a poll backs it up)."""

from __future__ import annotations

import logging
import threading
from typing import Any, ClassVar

from celery import Celery, bootsteps

from taskscheduler.adapters.broker import celery_queue_name
from taskscheduler.adapters.postgres.queue_names import PostgresQueueNames
from taskscheduler.core.errors import StorageUnavailable
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
        self._queue_names = PostgresQueueNames(self.settings.libpq_url)
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
        # Applied on the consumer's timer only, once its loop runs: consuming from a queue
        # before then lets RabbitMQ push a message that the consumer has no callback for yet.
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
                for names in self._queue_names.watch(interval, stopping):
                    self._names = _celery_queues(names, self.settings)
            except StorageUnavailable as exc:
                log.warning("queue names not read (%s); trying again", exc)
                stopping.wait(interval)

    def _read_names(self) -> None:
        try:
            names = self._queue_names.read()
        except StorageUnavailable as exc:
            log.warning("queue names not read (%s); trying again", exc)
            return
        self._names = _celery_queues(names, self.settings)

    def _apply(self, c: Any) -> None:
        for name in sorted(self._names):
            if not c.task_consumer.consuming_from(name):
                # Made as the publishers make a queue they have not seen (a quorum queue on
                # RabbitMQ, which refuses to declare it again with other arguments).
                queue = c.app.amqp.queues[name]
                c.add_task_queue(queue.name)


def _celery_queues(names: frozenset[str], settings: Settings) -> frozenset[str]:
    return frozenset(celery_queue_name(settings, name) for name in names)
