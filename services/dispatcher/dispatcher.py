"""The dispatch loops: promote due tasks and let ready ones through their queues, sleeping until
the next due time, the next token of a rate-limited queue or a NOTIFY; and repair what faults
leave behind (expired leases, lost messages)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta

from taskscheduler.adapters import metrics
from taskscheduler.adapters.postgres.due_tasks import PostgresDueTasks
from taskscheduler.adapters.postgres.listener import StatusListener
from taskscheduler.core.errors import BrokerUnavailable, StorageUnavailable
from taskscheduler.core.firer import ScheduleFirer
from taskscheduler.core.model import HeldBackBy, StatusEvent, TaskStatus
from taskscheduler.core.ports import (
    AttemptStore,
    TaskMessage,
    TaskPublisher,
    WorkerRepository,
    WorkflowRepository,
)
from taskscheduler.core.recovery import recover_expired_leases

log = logging.getLogger("taskscheduler.dispatcher")


REFILL_DELAY_SECONDS = 0.1
"""Claims free room in the broker one by one; one pass this much later refills it for all of
them. With dispatch_ahead tasks ahead (200), that feeds 2,000 claims a second per queue; each pass
costs about six statements, so at 20 ms they had cost more than the tasks they let through."""
IDLE_DUE_DELAY_SECONDS = 0.02


def _due(time: datetime | None, now: datetime) -> bool:
    return time is not None and time <= now


class Dispatcher:
    """Any number may run side by side: each due row is claimed by exactly one of them."""

    def __init__(
        self,
        due_tasks: PostgresDueTasks,
        schedules: ScheduleFirer,
        attempts: AttemptStore,
        publisher: TaskPublisher,
        listener: StatusListener,
        batch_size: int,
        idle_poll_seconds: float,
        maintenance_every_seconds: float,
        retention: timedelta,
        retention_batch_size: int,
        workflows: WorkflowRepository,
        workers: WorkerRepository,
        forget_workers_after: timedelta,
    ) -> None:
        self._due_tasks = due_tasks
        self._workers = workers
        self._forget_workers_after = forget_workers_after
        self._workflows = workflows
        self._workflows_to_stop = True  # until a pass has looked
        self._schedules = schedules
        self._attempts = attempts
        self._publisher = publisher
        self._batch_size = batch_size
        self._idle_poll_seconds = idle_poll_seconds
        self._maintenance_every_seconds = maintenance_every_seconds
        self._retention = retention
        self._retention_batch_size = retention_batch_size
        self._wake = asyncio.Event()
        self._planned_wake: datetime | None = None
        self._next_token_in: float | None = None
        # What the last pass left: the caps that held ready tasks back (a freed slot may let
        # them through), and the next due timer and fire (None: none; unknown until read).
        self._held_back_by: frozenset[HeldBackBy] = frozenset()
        self._buffered_fires = False
        self._refill_planned = False
        self._in_pass = False
        self._seen_in_pass: set[TaskStatus] = set()
        self._times_known = False
        self._next_timer: datetime | None = None
        self._next_fire: datetime | None = None
        listener.observe(self._on_event)
        listener.observe_wakes(self._on_wake)

    def _on_wake(self) -> None:
        """A queue or a schedule changed (read the next fire time again), or a workflow is to
        stop."""
        self._times_known = False
        self._workflows_to_stop = True
        self._wake.set()

    def _on_event(self, event: StatusEvent | None, run_at: datetime | None) -> None:
        """Wakes the loop for a change that may let a task through: a ready task; a slot freed
        while tasks wait for one; a timer due before the planned wake-up."""
        if event is None or run_at is None:  # events may have been missed
            self._times_known = False
            self._wake.set()
            return
        status = event.status
        if status in (TaskStatus.SCHEDULED, TaskStatus.RETRYING):
            if self._next_timer is None or run_at < self._next_timer:
                self._next_timer = run_at
            if self._planned_wake is None or run_at < self._planned_wake:
                self._wake.set()
        if status is TaskStatus.PENDING:
            self._wake.set()
            return
        if self._in_pass:  # judged by what the pass leaves held back, once it is done
            self._seen_in_pass.add(status)
        self._on_slot_freed(status)

    def _on_slot_freed(self, status: TaskStatus) -> None:
        if status is TaskStatus.RUNNING and HeldBackBy.DISPATCH_AHEAD in self._held_back_by:
            self._refill_soon()  # a claim freed room in the broker
        ends = status.is_terminal or status is TaskStatus.RETRYING
        if ends and (HeldBackBy.CONCURRENCY in self._held_back_by or self._buffered_fires):
            self._wake.set()  # an end freed a slot, or a buffered fire may now run

    def _refill_soon(self) -> None:
        """Claims free room in the broker one by one; one pass a little later refills it for
        all of them (the bound is far above what workers claim in that time)."""
        if self._refill_planned:
            return
        self._refill_planned = True
        asyncio.get_running_loop().call_later(REFILL_DELAY_SECONDS, self._refill)

    def _refill(self) -> None:
        self._refill_planned = False
        self._wake.set()

    async def dispatch_due(self) -> int:
        """One pass: due timers become ready, due schedules fire, ready tasks go through their
        queues. Returns the most work one step did (a full batch: more may be waiting)."""
        self._in_pass, self._seen_in_pass = True, set()
        try:
            return await self._pass()
        finally:
            self._in_pass = False
            for status in self._seen_in_pass:  # slots freed while the pass counted them
                self._on_slot_freed(status)

    async def _pass(self) -> int:
        now = datetime.now(UTC)
        promoted = fired = 0
        if self._workflows_to_stop:
            self._workflows_to_stop = False
            await self._workflows.stop_marked(self._batch_size)
        if not self._times_known or _due(self._next_timer, now):
            promoted = await self._due_tasks.promote_due(self._batch_size)
        if not self._times_known or self._buffered_fires or _due(self._next_fire, now):
            fired = await self._fire_schedules()
        dispatch = await self._due_tasks.dispatch_ready(self._batch_size)
        for queue in dispatch.queues:
            metrics.observe_dispatch(
                queue.tenant, queue.queue, queue.dispatched, queue.held_back_by
            )
        self._next_token_in = dispatch.next_token_in
        self._held_back_by = dispatch.held_back_by
        backlog: dict[str, int] = {}
        for queue in dispatch.queues:
            backlog[queue.queue] = backlog.get(queue.queue, 0) + queue.unclaimed
        await self._publish(dispatch.messages, backlog)
        times = await self._due_tasks.next_times()
        self._next_timer, self._next_fire, self._buffered_fires = times
        self._times_known = True
        if dispatch.more_queues:
            return self._batch_size  # other queues wait: go on at once
        return max(promoted, fired, len(dispatch.messages))

    async def _fire_schedules(self) -> int:
        """A schedule that fails for a bug must not stop every queue: logged, and the queues
        are dispatched all the same (an outage fails the pass, to be tried again)."""
        try:
            return await self._schedules.fire_due(self._batch_size)
        except (StorageUnavailable, BrokerUnavailable):
            raise
        except Exception:
            log.exception("firing schedules failed; dispatching the queues all the same")
            return 0

    async def republish_lost(self) -> int:
        return await self._publish(await self._due_tasks.republish_lost(self._batch_size))

    async def _publish(
        self, messages: list[TaskMessage], backlog: dict[str, int] | None = None
    ) -> int:
        await self._publisher.publish_many(messages, backlog)
        return len(messages)

    async def run(self, stopping: asyncio.Event) -> None:
        maintenance = asyncio.create_task(self._maintenance_loop(stopping), name="maintenance")
        try:
            await self._dispatch_loop(stopping)
        finally:
            maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await maintenance

    async def _dispatch_loop(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            self._wake.clear()  # what happens from here on wakes the next sleep
            try:
                done = await self.dispatch_due()
                if done >= self._batch_size:
                    continue  # more may be due right now
                delay = self._seconds_until_next_due()
                if not done and delay == 0:
                    # Due, yet nothing done: another dispatcher holds it, or this clock runs
                    # ahead of the database's. Do not spin.
                    delay = IDLE_DUE_DELAY_SECONDS
                if self._next_token_in is not None:
                    delay = min(delay, self._next_token_in)
            except (StorageUnavailable, BrokerUnavailable) as exc:
                log.warning("%s; retrying", exc)
                delay = self._idle_poll_seconds
            except Exception:  # a bug must not stop every queue: log it and go on
                log.exception("dispatch pass failed; retrying")
                delay = self._idle_poll_seconds
            await self._sleep(delay, stopping, self._wake)

    async def _maintenance_loop(self, stopping: asyncio.Event) -> None:
        """Repairs what faults leave behind (expired leases, possibly lost messages) and deletes
        what is past keeping (finished tasks, stopped or lost workers)."""
        while not stopping.is_set():
            try:
                recovered = await asyncio.to_thread(
                    recover_expired_leases, self._attempts, self._batch_size
                )
                if recovered:
                    log.warning("recovered %d attempts whose lease expired", recovered)
                stopped = await self._workflows.stop_marked(self._batch_size)
                if stopped:
                    log.info("cancelled %d steps of stopped workflows", stopped)
                republished = await self.republish_lost()
                if republished:
                    log.warning("published %d unclaimed PENDING tasks again", republished)
                started = time.monotonic()
                deleted = await self._due_tasks.delete_finished(
                    self._retention, self._retention_batch_size
                )
                metrics.observe_retention(deleted, time.monotonic() - started)
                if deleted:
                    log.info("deleted %d tasks past their retention", deleted)
                await self._workers.forget(self._forget_workers_after)
            except (StorageUnavailable, BrokerUnavailable) as exc:
                log.warning("%s; retrying", exc)
            except Exception:
                log.exception("maintenance pass failed; retrying")
            await self._sleep(self._maintenance_every_seconds, stopping)

    def _seconds_until_next_due(self) -> float:
        times = (self._next_timer, self._next_fire)
        next_due = min((time for time in times if time is not None), default=None)
        self._planned_wake = next_due
        if next_due is None:
            return self._idle_poll_seconds
        seconds = (next_due - datetime.now(UTC)).total_seconds()
        return max(0.0, min(seconds, self._idle_poll_seconds))

    @staticmethod
    async def _sleep(delay: float, *events: asyncio.Event) -> None:
        """Sleeps `delay` seconds or until one of `events` is set."""
        waiters = [asyncio.ensure_future(event.wait()) for event in events]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED), delay
            )
        for waiter in waiters:
            waiter.cancel()
