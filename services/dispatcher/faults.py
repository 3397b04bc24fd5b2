"""Fault injection for the fault suite (`make chaos`): never enabled in production."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable

from taskscheduler.core.ports import TaskMessage, TaskPublisher

log = logging.getLogger("taskscheduler.dispatcher")

CRASH_EXIT_CODE = 70


class CrashBeforePublish:
    """A publisher that, with the given probability, ends the process after tasks were
    dispatched (committed) and before their messages are published: the dual-write gap the
    repair loop closes."""

    def __init__(
        self,
        publisher: TaskPublisher,
        probability: float,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._publisher = publisher
        self._probability = probability
        self._draw = draw

    async def publish_many(self, messages: list[TaskMessage]) -> None:
        if messages and self._draw() < self._probability:
            log.error(
                "fault injection: exiting between commit and publish of %d tasks", len(messages)
            )
            os._exit(CRASH_EXIT_CODE)
        await self._publisher.publish_many(messages)
