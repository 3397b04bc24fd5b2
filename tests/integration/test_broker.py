"""The broker message, read back from Redis: a task id and attempt number, never the task."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta

import pytest
import redis

from taskscheduler.adapters.broker import (
    EXECUTE_TASK,
    celery_queue_name,
    make_celery_app,
    make_publisher,
)
from taskscheduler.core.ports import TaskMessage
from taskscheduler.settings import Settings


def test_workers_ack_late_and_prefetch_one_task(settings: Settings) -> None:
    """A task whose worker dies is delivered again; a worker holds one unstarted message."""
    conf = make_celery_app(settings).conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_ignore_result is True
    assert conf.result_backend is None


async def test_a_message_carries_the_task_id_and_attempt_only(settings: Settings) -> None:
    own = settings.model_copy(update={"celery_queue": f"test-broker-{uuid.uuid4().hex[:8]}"})
    publisher = make_publisher(own)
    task_id = uuid.uuid4()
    await publisher.publish_many(
        [TaskMessage(task_id, 2, timedelta(seconds=5), "reports", traceparent="")]
    )

    client = redis.Redis.from_url(own.redis_url)
    raw = client.lpop(celery_queue_name(own, "reports"))
    assert isinstance(raw, bytes), "nothing was published to the queue's own Celery queue"
    message = json.loads(raw)
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert message["headers"]["task"] == EXECUTE_TASK
    assert args == [str(task_id), 2]
    assert kwargs == {}
    assert message["headers"]["timelimit"][0] > 5, "the hard time limit is past the timeout"


async def test_a_deep_backlog_packs_ids_and_attempts_only(settings: Settings) -> None:
    own = settings.model_copy(
        update={"celery_queue": f"test-broker-{uuid.uuid4().hex[:8]}", "ids_per_message": 10}
    )
    sent = [TaskMessage(uuid.uuid4(), 1, timedelta(seconds=5), "reports") for _ in range(20)]
    await make_publisher(own).publish_many(sent, backlog={"reports": 200})

    client = redis.Redis.from_url(own.redis_url)
    carried: list[tuple[str, int]] = []
    while isinstance(raw := client.rpop(celery_queue_name(own, "reports")), bytes):
        message = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        task_id, attempt, then = args
        assert kwargs == {}
        carried.append((task_id, attempt))
        carried += [(other_id, other_attempt) for other_id, other_attempt, _ in then]
        assert message["headers"]["timelimit"][0] > 5 * (1 + len(then))
    assert carried == [(str(m.task_id), 1) for m in sent]


def test_a_collected_connection_fails_its_channels_with_a_connection_error(
    settings: Settings,
) -> None:
    """Celery's consumer collects a broken broker connection, then closes it; a channel whose
    first close was cut short requeues its unacknowledged messages then. That must fail as a
    connection error (which the teardown ignores, so the worker reconnects), not as an
    AttributeError (which made the worker exit)."""
    app = make_celery_app(settings)
    connection = app.connection_for_read()
    errors = connection.connection_errors
    channel = connection.default_channel
    assert channel.client.ping()
    connection.collect()

    with pytest.raises(errors), channel.conn_or_acquire():
        pass
