"""One LISTEN connection per process, fanning status changes out to in-memory subscribers."""

# A process that only serves streams (the api) LISTENs to status changes only while one of its
# callers streams: every status change of every task would otherwise wake each such process
# (three a task), which cost the api most of its CPU in an end-to-end run.

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
from typing import Any

import psycopg

from taskscheduler.adapters.postgres.schema import PROGRESS_CHANNEL, STATUS_CHANNEL, WAKE_CHANNEL
from taskscheduler.core.model import Progress, ProgressEvent, StatusEvent, TaskStatus
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
        workflow_id=uuid.UUID(body["workflow_id"]) if body.get("workflow_id") else None,
    )
    return event, datetime.fromisoformat(body["run_at"])


def parse_progress(payload: str) -> ProgressEvent:
    body = json.loads(payload)
    reported = body["progress"]
    progress = Progress(
        done=float(reported["done"]),
        total=None if reported["total"] is None else float(reported["total"]),
        message=str(reported["message"]),
        update_time=datetime.fromisoformat(body["time"]),
    )
    return ProgressEvent(uuid.UUID(body["id"]), int(body["attempt"]), progress)


Event = StatusEvent | ProgressEvent | None


class StatusListener:
    """Implements core.ports.StatusEvents; reconnects by itself and then signals RESYNC."""

    def __init__(self, libpq_url: str, reconnect_delay: float = 1.0) -> None:
        self._url = libpq_url
        self._reconnect_delay = reconnect_delay
        self._subscribers: dict[uuid.UUID, set[asyncio.Queue[Event]]] = defaultdict(set)
        self._observers: list[Callable[[StatusEvent | None, datetime | None], None]] = []
        self._wake_observers: list[Callable[[], None]] = []
        self._runner: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._status_listening = asyncio.Event()
        self._channels_changed = asyncio.Event()

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

    @property
    def listening_to_status(self) -> bool:
        """Whether status changes reach this process now."""
        return self._status_listening.is_set()

    def observe(self, callback: Callable[[StatusEvent | None, datetime | None], None]) -> None:
        """Calls back on every event of every task (and with None on RESYNC)."""
        self._observers.append(callback)

    def observe_wakes(self, callback: Callable[[], None]) -> None:
        """Calls back when a queue or a schedule changed in a way that needs the dispatchers."""
        self._wake_observers.append(callback)

    @asynccontextmanager
    async def subscribe(
        self, task_id: uuid.UUID, wait_seconds: float = 5.0
    ) -> AsyncIterator[AsyncIterator[Event]]:
        """The events of a task (status changes and progress reports), or of every step of a
        workflow (by the workflow's id; status changes only). Yields
        once the connection LISTENs (or after `wait_seconds` without it: the caller's next read
        then fails, or a RESYNC follows the reconnection), so that every change committed after
        the caller reads the task's state reaches it."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers[task_id].add(queue)
        if not self._status_listening.is_set():
            self._channels_changed.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status_listening.wait(), wait_seconds)
        try:
            yield _drain(queue)
        finally:
            subscribers = self._subscribers.get(task_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[task_id]

    def _channels(self) -> set[str]:
        """The channels to LISTEN to now: status changes while anyone wants them, progress
        reports while a stream is open. Only a process without observers (one that serves
        streams) ever has none, and then waits for its first subscriber instead of for
        notifications."""
        channels = {WAKE_CHANNEL} if self._wake_observers else set()
        if self._wake_observers or self._observers or self._subscribers:
            channels.add(STATUS_CHANNEL)
        if self._subscribers:
            channels.add(PROGRESS_CHANNEL)
        return channels

    async def _run(self) -> None:
        connected_before = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as conn:
                    await self._serve(conn, resync=connected_before)
            except psycopg.Error as exc:
                self._listening.clear()
                self._status_listening.clear()
                log.warning("status listener lost its connection (%s); reconnecting", exc)
                await asyncio.sleep(self._reconnect_delay)
            connected_before = True

    async def _serve(self, conn: psycopg.AsyncConnection[Any], resync: bool) -> None:
        """LISTENs to what is wanted and delivers what arrives; when the wanted channels
        change, LISTENs or UNLISTENs, and goes on."""
        listening: set[str] = set()
        conn.add_notify_handler(self._on_notify)  # those that arrive during LISTEN, UNLISTEN
        while True:
            # No await between reading the wanted channels and saying whether status changes
            # are listened to: a subscriber either counts here or sees that it must wait.
            self._channels_changed.clear()
            wanted = self._channels()
            if STATUS_CHANNEL not in wanted:
                self._status_listening.clear()
            for channel in sorted(wanted - listening):
                await conn.execute(f"LISTEN {channel}")
            for channel in sorted(listening - wanted):
                await conn.execute(f"UNLISTEN {channel}")
            listening = wanted
            if STATUS_CHANNEL in listening:
                self._status_listening.set()
            if not self._listening.is_set():
                self._listening.set()
                if resync:
                    self._broadcast_resync()
            if not listening:  # nothing can arrive: wait for a subscriber
                await self._channels_changed.wait()
                continue
            await self._deliver_until_changed(conn, listening)

    async def _deliver_until_changed(
        self, conn: psycopg.AsyncConnection[Any], listening: set[str]
    ) -> None:
        """Delivers what arrives, every notification read at once, until the last subscriber
        has left. The socket stays registered with the loop throughout: psycopg's notifies()
        registered and unregistered it for every wait, which cost the dispatcher a third of
        its time (three notifications a task)."""
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        socket = conn.pgconn.socket
        loop.add_reader(socket, readable.set)
        try:
            encoding = conn.info.encoding
            while True:
                conn.pgconn.consume_input()  # psycopg.OperationalError once the link is gone
                while (received := conn.pgconn.notifies()) is not None:
                    channel = received.relname.decode(encoding)
                    payload = received.extra.decode(encoding)
                    self._on_notify(psycopg.Notify(channel, payload, received.be_pid))
                if self._channels() != listening:
                    return
                await readable.wait()
                readable.clear()
        finally:
            loop.remove_reader(socket)

    def _on_notify(self, notify: psycopg.Notify) -> None:
        if notify.channel == WAKE_CHANNEL:
            for callback in self._wake_observers:
                callback()
        elif notify.channel == PROGRESS_CHANNEL:
            self._deliver_progress(notify.payload)
        else:
            self._deliver(notify.payload)

    def _deliver_progress(self, payload: str) -> None:
        try:
            event = parse_progress(payload)
        except (ValueError, KeyError, TypeError):
            log.error("ignoring a malformed progress notification: %.200s", payload)
            return
        for queue in self._subscribers.get(event.task_id, ()):
            queue.put_nowait(event)

    def _deliver(self, payload: str) -> None:
        try:
            event, run_at = parse_notification(payload)
        except (ValueError, KeyError):
            log.error("ignoring a malformed status notification: %.200s", payload)
            return
        for queue in self._subscribers.get(event.task_id, ()):
            queue.put_nowait(event)
        if event.workflow_id is not None:
            for queue in self._subscribers.get(event.workflow_id, ()):
                queue.put_nowait(event)
        for observer in self._observers:
            observer(event, run_at)

    def _broadcast_resync(self) -> None:
        for queues in self._subscribers.values():
            for queue in queues:
                queue.put_nowait(RESYNC)
        for observer in self._observers:
            observer(RESYNC, None)


async def _drain(queue: asyncio.Queue[Event]) -> AsyncIterator[Event]:
    while True:
        yield await queue.get()
