"""Fault injection for the fault suite (`make chaos`): never enabled in production."""

from __future__ import annotations

import logging
import os
import random
import uuid
from collections.abc import Callable
from datetime import timedelta

from taskscheduler.core.ports import TaskPublisher

log = logging.getLogger("taskscheduler.api")

CRASH_EXIT_CODE = 70


class CrashBeforePublish:
    """A publisher that, with the given probability, ends the process after the task was
    committed and before its message is published: the dual-write gap the repair loop closes."""

    def __init__(
        self,
        publisher: TaskPublisher,
        probability: float,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._publisher = publisher
        self._probability = probability
        self._draw = draw

    async def publish(
        self, task_id: uuid.UUID, attempt: int, attempt_timeout: timedelta | None
    ) -> None:
        if self._draw() < self._probability:
            log.error("fault injection: exiting between commit and publish of task %s", task_id)
            os._exit(CRASH_EXIT_CODE)
        await self._publisher.publish(task_id, attempt, attempt_timeout)

    async def publish_many(self, tasks: list[tuple[uuid.UUID, int, timedelta | None]]) -> None:
        for task in tasks:
            await self.publish(*task)
