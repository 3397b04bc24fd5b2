"""The Celery broker: the app's configuration and the publisher of task ids."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import Celery

from taskscheduler.adapters import redis_transport
from taskscheduler.core.errors import BrokerUnavailable
from taskscheduler.core.model import DEFAULT_QUEUE
from taskscheduler.core.ports import TaskMessage
from taskscheduler.settings import Settings

log = logging.getLogger("taskscheduler.broker")

PUBLISH_RETRY_DELAYS = (0.1, 0.2, 0.4, 0.8)  # seconds between tries of one batch

EXECUTE_TASK = "taskscheduler.execute"
"""The one Celery task: its message carries a task id and attempt number, never state; with a
deep backlog, the ids and attempts of the tasks to run after it too (`then`)."""

SPREAD = 16
"""A pass's tasks of one queue go out in at least this many messages (fewer only for fewer
tasks), so that as many idle workers start on them at once; above that, several ids share one
message, up to the ids_per_message setting."""


@dataclass(frozen=True)
class Delivery:
    """One task id of a broker message, with the attempt it is meant for (logs and traces)."""

    task_id: str
    attempt: int
    traceparent: str = ""


def pack(
    messages: Sequence[TaskMessage], most: int, backlog: Mapping[str, int]
) -> list[list[TaskMessage]]:
    """Groups tasks into broker messages: per queue, in their order, each of ceil(n / SPREAD)
    ids up to `most`, where n counts the queue's tasks already with the broker (`backlog`) too.
    A task alone on an idle queue is a message of its own."""
    by_queue: dict[str, list[TaskMessage]] = {}
    for message in messages:
        by_queue.setdefault(message.queue, []).append(message)
    packs: list[list[TaskMessage]] = []
    for queue, group in by_queue.items():
        depth = len(group) + backlog.get(queue, 0)
        size = max(1, min(most, -(-depth // SPREAD)))
        packs += [group[first : first + size] for first in range(0, len(group), size)]
    return packs


def send_execute(
    app: Celery,
    celery_queue: str,
    deliveries: Sequence[Delivery],
    time_limit: float | None,
    producer: Any = None,
) -> None:
    """Publishes one message that runs `deliveries` in order: the first as the task's plain
    arguments (task id, attempt), the others after it."""
    first, then = deliveries[0], deliveries[1:]
    args: list[Any] = [first.task_id, first.attempt]
    if then:
        args.append([[d.task_id, d.attempt, d.traceparent] for d in then])
    app.send_task(
        EXECUTE_TASK,
        args=args,
        producer=producer,
        queue=celery_queue,
        headers={"traceparent": first.traceparent} if first.traceparent else None,
        # Celery would build these with saferepr, a cost per message that its logs alone use.
        argsrepr=f"{first.task_id} (+{len(then)})" if then else first.task_id,
        kwargsrepr="{}",
        **({} if time_limit is None else {"time_limit": time_limit}),
    )


def celery_queue_name(settings: Settings, queue: str) -> str:
    """Each queue has a Celery queue of its own, so that workers can serve a subset; the
    default queue keeps the plain name."""
    return settings.celery_queue if queue == DEFAULT_QUEUE else f"{settings.celery_queue}.{queue}"


def make_celery_app(settings: Settings) -> Celery:
    app = Celery("taskscheduler", broker=settings.celery_broker_url, set_as_current=False)
    app.conf.update(**(_rabbitmq() if settings.broker_is_rabbitmq else _redis()))
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


def _redis() -> dict[str, Any]:
    return {"broker_transport": redis_transport.TRANSPORT}


def _rabbitmq() -> dict[str, Any]:
    """Quorum queues (replicated by Raft across the cluster's nodes, durable, and what RabbitMQ
    recommends for data safety) for every Celery queue, declared as workers and publishers
    first use them; publisher confirms, so that a publish returns once the broker holds the
    message, and persistent messages. Celery sees the quorum queues and sets its prefetch per
    consumer (they have no global QoS)."""
    return {
        "task_default_queue_type": "quorum",
        "task_create_missing_queue_type": "quorum",
        "task_default_delivery_mode": "persistent",
        "broker_transport_options": {"confirm_publish": True},
    }


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

    def _time_limit(self, messages: Sequence[TaskMessage]) -> float | None:
        """The hard limit of a message: every task's timeout and its backstop, added up; none
        when one of its tasks has no timeout."""
        if any(message.timeout is None for message in messages):
            return None
        return sum((m.timeout + self._backstop).total_seconds() for m in messages if m.timeout)

    def _publish_sync(self, messages: list[TaskMessage], backlog: Mapping[str, int]) -> None:
        """Sends a batch, again and again for about 1.5 s if the broker fails (kombu does not
        retry a batch): a Redis restart is ridden out. Sending again may duplicate a message,
        which the guarded claim makes harmless."""
        for delay in (*PUBLISH_RETRY_DELAYS, None):
            try:
                self._send_batch(messages, backlog)
                return
            except Exception as exc:  # kombu and redis-py raise several types; all are retried
                if delay is None:
                    raise BrokerUnavailable(f"the broker did not take the messages: {exc}") from exc
                log.warning("publishing failed (%s); again in %.1f s", exc, delay)
                time.sleep(delay)

    def _send_batch(self, messages: list[TaskMessage], backlog: Mapping[str, int]) -> None:
        """One producer, its messages pipelined to Redis (kombu's publish batch): one round
        trip per batch instead of one per message."""
        with self._app.producer_or_acquire() as producer, producer.batch():
            for packed in pack(messages, self._settings.ids_per_message, backlog):
                send_execute(
                    self._app,
                    celery_queue_name(self._settings, packed[0].queue),
                    [Delivery(str(m.task_id), m.attempt, m.traceparent) for m in packed],
                    self._time_limit(packed),
                    producer=producer,
                )

    async def publish_many(
        self, messages: list[TaskMessage], backlog: Mapping[str, int] | None = None
    ) -> None:
        if messages:
            await asyncio.to_thread(self._publish_sync, messages, backlog or {})


def make_publisher(settings: Settings) -> CeleryPublisher:
    return CeleryPublisher(make_celery_app(settings), settings)
