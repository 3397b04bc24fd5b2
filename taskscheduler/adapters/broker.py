"""The Celery broker: the app's configuration and the publisher of task ids."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import timedelta

from celery import Celery

from taskscheduler import logs
from taskscheduler.core.errors import BrokerUnavailable
from taskscheduler.settings import Settings

log = logging.getLogger("taskscheduler.broker")

PUBLISH_RETRY_DELAYS = (0.1, 0.2, 0.4, 0.8)  # seconds between tries of one batch

PublishItem = tuple[uuid.UUID, int, timedelta | None]
"""A task id, its attempt number and the attempt's timeout."""
Traced = tuple[PublishItem, str]
"""An item and the W3C traceparent of the call that published it (empty: none)."""

EXECUTE_TASK = "taskscheduler.execute"
"""The one Celery task: its message carries a task id and attempt number, never state."""


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

    def __init__(self, app: Celery, stop_grace: timedelta) -> None:
        self._app = app
        self._backstop = 3 * stop_grace
        self._waiting: list[tuple[Traced, asyncio.Future[None]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        """Connects and declares the queue now, so that the first publish does not pay for it
        (about 130 ms, measured). A broker that is down is no reason not to start: publishing
        tries again, and the dispatcher re-publishes what could not be sent."""
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

    def _publish_sync(self, items: list[Traced]) -> None:
        """Sends a batch, again and again for about 1.5 s if the broker fails (kombu does not
        retry a batch): a Redis restart is ridden out. Sending again may duplicate a message,
        which the guarded claim makes harmless."""
        for delay in (*PUBLISH_RETRY_DELAYS, None):
            try:
                self._send_batch(items)
                return
            except Exception as exc:  # kombu and redis-py raise several types; all are retried
                if delay is None:
                    raise BrokerUnavailable(f"the broker did not take the messages: {exc}") from exc
                log.warning("publishing failed (%s); again in %.1f s", exc, delay)
                time.sleep(delay)

    def _send_batch(self, items: list[Traced]) -> None:
        """One producer, its messages pipelined to Redis (kombu's publish batch): one round
        trip per batch instead of one per message."""
        with self._app.producer_or_acquire() as producer, producer.batch():
            for (task_id, attempt, timeout), traceparent in items:
                self._app.send_task(
                    EXECUTE_TASK,
                    args=[str(task_id), attempt],
                    producer=producer,
                    headers={"traceparent": traceparent} if traceparent else None,
                    **self._limits(timeout),
                )

    async def publish_many(self, items: list[PublishItem]) -> None:
        traceparent = logs.current_traceparent()
        await self._publish_traced([(item, traceparent) for item in items])

    async def _publish_traced(self, items: list[Traced]) -> None:
        if items:
            await asyncio.to_thread(self._publish_sync, items)

    async def publish(
        self, task_id: uuid.UUID, attempt: int, attempt_timeout: timedelta | None
    ) -> None:
        """Returns once the message is with the broker. Concurrent calls share a batch: while
        one batch is being sent, the next gathers, so N callers cost one thread hop and one
        pipelined round trip instead of N of each (a group commit for publishes)."""
        sent = asyncio.get_running_loop().create_future()
        item = (task_id, attempt, attempt_timeout)
        self._waiting.append(((item, logs.current_traceparent()), sent))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_waiting())
        await sent

    async def _send_waiting(self) -> None:
        batch: list[tuple[Traced, asyncio.Future[None]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                failure: BrokerUnavailable | None = None
                try:
                    await self._publish_traced([item for item, _ in batch])
                except BrokerUnavailable as exc:
                    failure = exc
                for _, sent in batch:
                    if sent.done():
                        continue  # its caller was cancelled
                    if failure is None:
                        sent.set_result(None)
                    else:
                        sent.set_exception(BrokerUnavailable(str(failure)))
                batch = []
        finally:  # cancelled (the loop is closing): no caller may wait for ever
            for _, sent in batch + self._waiting:
                sent.cancel()
            self._waiting = []


def make_publisher(settings: Settings) -> CeleryPublisher:
    return CeleryPublisher(
        make_celery_app(settings), timedelta(seconds=settings.stop_grace_seconds)
    )
