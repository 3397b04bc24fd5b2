"""The Celery broker: the app's configuration and the publisher of task ids."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from celery import Celery

from taskscheduler.core.errors import BrokerUnavailable
from taskscheduler.core.model import DEFAULT_QUEUE
from taskscheduler.core.ports import TaskMessage
from taskscheduler.settings import Settings

log = logging.getLogger("taskscheduler.broker")

PUBLISH_RETRY_DELAYS = (0.1, 0.2, 0.4, 0.8)  # seconds between tries of one batch

EXECUTE_TASK = "taskscheduler.execute"
"""The one Celery task: its message carries a task id and attempt number, never state."""


def celery_queue_name(settings: Settings, queue: str) -> str:
    """Each queue has a Celery queue of its own, so that workers can serve a subset; the
    default queue keeps the plain name."""
    return settings.celery_queue if queue == DEFAULT_QUEUE else f"{settings.celery_queue}.{queue}"


def make_celery_app(settings: Settings) -> Celery:
    app = Celery("taskscheduler", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.celery_queue,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        # PostgreSQL decides what runs: a broker blip must not kill handlers that are running.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app


class CeleryPublisher:
    """Implements core.ports.TaskPublisher; kombu is blocking, so publishing runs in a thread.

    The worker enforces a task's timeout itself, from the moment of its claim; the message
    carries Celery's hard time limit as a backstop, past the worker's own escalation, for a
    handler stuck where no signal reaches it (the parent process kills the pool process).
    """

    def __init__(self, app: Celery, settings: Settings) -> None:
        self._app = app
        self._settings = settings
        self._backstop = 3 * timedelta(seconds=settings.stop_grace_seconds)

    async def connect(self) -> None:
        """Connects and declares the default queue now, so that the first publish does not pay
        for it (about 130 ms, measured). A broker that is down is no reason not to start:
        publishing tries again, and the dispatcher re-publishes what could not be sent."""
        try:
            await asyncio.to_thread(self._connect_sync)
        except Exception as exc:  # kombu raises several types; none must stop a start
            log.warning("broker not reachable at start (%s); publishing will retry", exc)

    def _connect_sync(self) -> None:
        with self._app.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=1)
            producer.maybe_declare(self._app.amqp.queues[self._app.conf.task_default_queue])

    def _limits(self, timeout: timedelta | None) -> dict[str, float]:
        if timeout is None:
            return {}
        return {"time_limit": (timeout + self._backstop).total_seconds()}

    def _publish_sync(self, messages: list[TaskMessage]) -> None:
        """Sends a batch, again and again for about 1.5 s if the broker fails (kombu does not
        retry a batch): a Redis restart is ridden out. Sending again may duplicate a message,
        which the guarded claim makes harmless."""
        for delay in (*PUBLISH_RETRY_DELAYS, None):
            try:
                self._send_batch(messages)
                return
            except Exception as exc:  # kombu and redis-py raise several types; all are retried
                if delay is None:
                    raise BrokerUnavailable(f"the broker did not take the messages: {exc}") from exc
                log.warning("publishing failed (%s); again in %.1f s", exc, delay)
                time.sleep(delay)

    def _send_batch(self, messages: list[TaskMessage]) -> None:
        """One producer, its messages pipelined to Redis (kombu's publish batch): one round
        trip per batch instead of one per message."""
        with self._app.producer_or_acquire() as producer, producer.batch():
            for message in messages:
                self._app.send_task(
                    EXECUTE_TASK,
                    args=[str(message.task_id), message.attempt],
                    producer=producer,
                    queue=celery_queue_name(self._settings, message.queue),
                    headers={"traceparent": message.traceparent} if message.traceparent else None,
                    **self._limits(message.timeout),
                )

    async def publish_many(self, messages: list[TaskMessage]) -> None:
        if messages:
            await asyncio.to_thread(self._publish_sync, messages)


def make_publisher(settings: Settings) -> CeleryPublisher:
    return CeleryPublisher(make_celery_app(settings), settings)
