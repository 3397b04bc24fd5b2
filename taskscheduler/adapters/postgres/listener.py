"""One LISTEN connection per process, fanning status changes out to in-memory subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

import psycopg

from taskscheduler.adapters.postgres.schema import STATUS_CHANNEL, WAKE_CHANNEL
from taskscheduler.core.model import StatusEvent, TaskStatus
from taskscheduler.core.ports import RESYNC

log = logging.getLogger(__name__)


def parse_notification(payload: str) -> tuple[StatusEvent, datetime]:
    """Returns the event of a NOTIFY payload and the task's run_at."""
    body = json.loads(payload)
    event = StatusEvent(
        task_id=uuid.UUID(body["id"]),
        status=TaskStatus(body["status"]),
        attempt=int(body["attempt"]),
        version=int(body["version"]),
        event_time=datetime.fromisoformat(body["time"]),
    )
    return event, datetime.fromisoformat(body["run_at"])


class StatusListener:
    """Implements core.ports.StatusEvents; reconnects by itself and then signals RESYNC."""

    def __init__(self, libpq_url: str, reconnect_delay: float = 1.0) -> None:
        self._url = libpq_url
        self._reconnect_delay = reconnect_delay
        self._subscribers: dict[uuid.UUID, set[asyncio.Queue[StatusEvent | None]]] = defaultdict(
            set
        )
        self._observers: list[Callable[[StatusEvent | None, datetime | None], None]] = []
        self._wake_observers: list[Callable[[], None]] = []
        self._runner: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def start(self, wait_seconds: float = 5.0) -> None:
        """Starts listening; waits a little for the first LISTEN, then goes on regardless."""
        self._runner = asyncio.create_task(self._run(), name="status-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), wait_seconds)

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    def observe(self, callback: Callable[[StatusEvent | None, datetime | None], None]) -> None:
        """Calls back on every event of every task (and with None on RESYNC)."""
        self._observers.append(callback)

    def observe_wakes(self, callback: Callable[[], None]) -> None:
        """Calls back when a queue or a schedule changed in a way that needs the dispatchers."""
        self._wake_observers.append(callback)

    @asynccontextmanager
    async def subscribe(
        self, task_id: uuid.UUID
    ) -> AsyncIterator[AsyncIterator[StatusEvent | None]]:
        queue: asyncio.Queue[StatusEvent | None] = asyncio.Queue()
        self._subscribers[task_id].add(queue)
        try:
            yield _drain(queue)
        finally:
            subscribers = self._subscribers.get(task_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[task_id]

    async def _run(self) -> None:
        connected_before = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {STATUS_CHANNEL}")
                    if self._wake_observers:
                        await conn.execute(f"LISTEN {WAKE_CHANNEL}")
                    self._listening.set()
                    if connected_before:
                        self._broadcast_resync()
                    connected_before = True
                    async for notify in conn.notifies():
                        if notify.channel == WAKE_CHANNEL:
                            for callback in self._wake_observers:
                                callback()
                        else:
                            self._deliver(notify.payload)
            except psycopg.Error as exc:
                self._listening.clear()
                log.warning("status listener lost its connection (%s); reconnecting", exc)
                await asyncio.sleep(self._reconnect_delay)

    def _deliver(self, payload: str) -> None:
        try:
            event, run_at = parse_notification(payload)
        except (ValueError, KeyError):
            log.error("ignoring a malformed status notification: %.200s", payload)
            return
        for queue in self._subscribers.get(event.task_id, ()):
            queue.put_nowait(event)
        for observer in self._observers:
            observer(event, run_at)

    def _broadcast_resync(self) -> None:
        for queues in self._subscribers.values():
            for queue in queues:
                queue.put_nowait(RESYNC)
        for observer in self._observers:
            observer(RESYNC, None)


async def _drain(queue: asyncio.Queue[StatusEvent | None]) -> AsyncIterator[StatusEvent | None]:
    while True:
        yield await queue.get()
