"""Fault injection for the fault suite (`make chaos`): never enabled in production."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from taskscheduler.core.ports import TaskMessage, TaskPublisher

log = logging.getLogger("taskscheduler.dispatcher")

CRASH_EXIT_CODE = 70


class CrashBeforePublish:
    """A publisher that, once its trigger file appears, deletes it and ends the process after
    tasks were dispatched (committed) and before their messages are published: the dual-write
    gap the repair loop closes. The fault suite creates the file when it wants the crash."""

    def __init__(self, publisher: TaskPublisher, trigger: Path) -> None:
        self._publisher = publisher
        self._trigger = trigger

    async def publish_many(
        self, messages: list[TaskMessage], backlog: Mapping[str, int] | None = None
    ) -> None:
        if messages and self._take_trigger():
            log.error(
                "fault injection: exiting between commit and publish of %d tasks", len(messages)
            )
            os._exit(CRASH_EXIT_CODE)
        await self._publisher.publish_many(messages, backlog)

    def _take_trigger(self) -> bool:
        """True for the one dispatcher that deletes the file, however many see it."""
        try:
            self._trigger.unlink()
        except FileNotFoundError:
            return False
        return True
