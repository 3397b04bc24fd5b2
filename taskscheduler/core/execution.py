"""The worker's use case: claim an attempt, run the kind's handler under a lease renewed by a
watchdog that stops the handler when it must, and record the outcome."""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import logging
import math
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from taskscheduler.core import retry
from taskscheduler.core.errors import DomainError, StorageUnavailable
from taskscheduler.core.kinds import KindRegistry, NonRetryableError, TaskCancelled, TaskContext
from taskscheduler.core.limits import MAX_ERROR_MESSAGE_CHARS, MAX_TRACEBACK_CHARS
from taskscheduler.core.model import JSON, RetryPolicy
from taskscheduler.core.payloads import check_json
from taskscheduler.core.ports import AttemptEnd, AttemptError, AttemptStore, ClaimedAttempt
from taskscheduler.core.progress import ProgressReporter
from taskscheduler.core.spawning import Spawner
from taskscheduler.core.tasks import TaskPreparer

log = logging.getLogger("taskscheduler.worker")


TIMEOUT_ERROR = "taskscheduler.TimeoutError"
CANCELLED_ERROR = "taskscheduler.Cancelled"
WORKER_LOST_ERROR = "taskscheduler.WorkerLost"


def error_of(exc: BaseException) -> AttemptError:
    """The error an exception raised by a handler records, cut to the stored sizes."""
    kind = type(exc)
    formatted = "".join(traceback.format_exception(exc))
    return AttemptError(
        type=f"{kind.__module__}.{kind.__qualname__}",
        message=str(exc)[:MAX_ERROR_MESSAGE_CHARS],
        traceback=formatted[-MAX_TRACEBACK_CHARS:],
    )


class Outcome(enum.StrEnum):
    SKIPPED = "skipped"  # not claimable: a duplicate delivery, cancelled or finished
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ExecutionObserver(Protocol):
    """Told of each attempt a worker runs (metrics); must be cheap and never raise."""

    def attempt_started(self, claimed: ClaimedAttempt) -> None: ...

    def attempt_finished(self, claimed: ClaimedAttempt, outcome: Outcome, seconds: float) -> None:
        """`seconds`: how long the handler ran."""


class _NoExecutionObserver:
    def attempt_started(self, claimed: ClaimedAttempt) -> None:
        pass

    def attempt_finished(self, claimed: ClaimedAttempt, outcome: Outcome, seconds: float) -> None:
        pass


def retry_delay(policy: RetryPolicy, failed_attempt: int, retryable: bool) -> timedelta | None:
    """How long after the failure the next attempt is due, or None when the task has failed for
    good. A delay, not a time: the store adds it to the database's clock, the one the
    dispatchers compare run_at with, whatever this machine's clock says."""
    if not retryable or failed_attempt >= policy.max_attempts:
        return None
    return retry.backoff(policy, failed_attempt)


@dataclass(frozen=True)
class Interrupts:
    """How the transport stops a handler that must stop: `interrupt` raises an exception inside
    it (Celery: SoftTimeLimitExceeded, from a signal whose handler asks interrupt_wanted first);
    `kill` ends the process when that did not help."""

    interrupt: Callable[[], None]
    kill: Callable[[], None]


@dataclass(frozen=True)
class LeaseSettings:
    duration: timedelta
    stop_grace: timedelta

    @property
    def renew_every(self) -> float:
        return self.duration.total_seconds() / 3


class StopReason(enum.Enum):
    CANCELLED = "cancelled"  # a cancel was asked for, or the lease was lost
    TIMED_OUT = "timed out"


class _Watch:
    """One running attempt as the watchdog sees it: its deadlines and how far it was stopped."""

    def __init__(
        self, claimed: ClaimedAttempt, lease: LeaseSettings, cancel_event: threading.Event
    ) -> None:
        start = time.monotonic()
        self.claimed = claimed
        self.cancel_event = cancel_event
        self.next_renew = start + lease.renew_every
        self.timeout_at = start + claimed.timeout.total_seconds() if claimed.timeout else math.inf
        self.escalate_at = math.inf
        self.stop_reason: StopReason | None = None
        self.interrupted = False
        self.active = True  # False from the moment the handler has returned

    @property
    def due_at(self) -> float:
        return min(self.next_renew, self.timeout_at, self.escalate_at)

    def begin_stop(self, reason: StopReason) -> None:
        self.stop_reason = reason
        self.cancel_event.set()  # a handler may check context.cancel_requested


class Watchdog:
    """One thread per process beside the handlers: renews the lease of each running attempt,
    and stops a handler when it must.

    On a cancel (or a lost lease) it sets the context's cancel event, interrupts the handler
    after the grace period, and kills the process after another. At the attempt's timeout it
    interrupts at once, then kills after the grace period. An attempt that ends before its
    first renewal costs it nothing but a set insertion and removal: the thread sleeps until the
    earliest deadline of the attempts it knows, and is woken only for an earlier one.
    """

    def __init__(self, store: AttemptStore, lease: LeaseSettings, interrupts: Interrupts) -> None:
        self._store = store
        self._lease = lease
        self._interrupts = interrupts
        self._changed = threading.Condition()
        self._watches: set[_Watch] = set()
        self._planned_wake = math.inf
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watching(self, claimed: ClaimedAttempt, cancel_event: threading.Event) -> Iterator[_Watch]:
        watch = _Watch(claimed, self._lease, cancel_event)
        with self._changed:
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="attempt-watchdog", daemon=True
                )
                self._thread.start()
            elif watch.due_at < self._planned_wake:
                self._changed.notify()
        try:
            yield watch
        finally:
            # Before any lock: an interrupt that arrives from here on must find nothing to stop
            # (see interrupt_wanted).
            watch.active = False
            with self._changed:
                self._watches.discard(watch)

    def interrupt_wanted(self) -> bool:
        """Whether an interrupt signal that arrives now is meant for a running handler: the
        transport's signal handler raises only then, so that a signal that lands just after the
        handler returned (in this module's own bookkeeping) changes nothing."""
        return any(watch.active and watch.interrupted for watch in list(self._watches))

    def _run(self) -> None:
        while True:
            with self._changed:
                due = self._wait_for_due()
            for watch in due:
                try:
                    self._step(watch, time.monotonic())
                except Exception:  # the thread serves every later attempt: it must live on
                    log.exception("watchdog step failed for task %s", watch.claimed.task_id)

    def _wait_for_due(self) -> list[_Watch]:
        """Sleeps until an attempt has a deadline due; called with the condition held."""
        while True:
            now = time.monotonic()
            due = [watch for watch in self._watches if watch.due_at <= now]
            if due:
                self._planned_wake = math.inf
                return due
            self._planned_wake = min((watch.due_at for watch in self._watches), default=math.inf)
            wait = None if self._planned_wake == math.inf else self._planned_wake - now
            self._changed.wait(wait)

    def _step(self, watch: _Watch, now: float) -> None:
        grace = self._lease.stop_grace.total_seconds()
        if now >= watch.next_renew:
            watch.next_renew = now + self._lease.renew_every
            if self._must_stop(watch) and watch.stop_reason is None:
                watch.begin_stop(StopReason.CANCELLED)
                watch.escalate_at = now + grace
        if now >= watch.timeout_at:
            watch.timeout_at = math.inf
            if watch.stop_reason is None:
                watch.begin_stop(StopReason.TIMED_OUT)
                watch.escalate_at = now  # no grace before the interrupt: the time is up
        if now < watch.escalate_at or not watch.active:
            return  # not yet, or the handler ended meanwhile: nothing to stop
        if watch.interrupted:
            watch.escalate_at = math.inf
            self._interrupts.kill()
            return
        # Never under the lock: the handler's thread takes it when the handler returns, and a
        # signal raised there would leave the lock taken.
        watch.interrupted = True
        watch.escalate_at = now + grace
        self._interrupts.interrupt()

    def _must_stop(self, watch: _Watch) -> bool:
        """Renews the lease; True when a cancel was asked for or the lease is no longer ours."""
        claimed = watch.claimed
        try:
            lease = self._store.renew(claimed.task_id, claimed.attempt, self._lease.duration)
        except DomainError:
            return False  # the database is away; the lease may still be ours when it returns
        return lease.cancel_requested or not lease.held


def no_next_task() -> None:
    """A `take_next` for a delivery of one task: nothing runs after it."""
    return None


def record_end(store: AttemptStore, end: AttemptEnd) -> bool:
    """Records an attempt's end with the store's succeed or fail, as it ended; False when the
    attempt fence refused it."""
    if end.error is None:
        return store.succeed(end.task_id, end.attempt, end.result, end.spawned)
    return store.fail(end.task_id, end.attempt, end.error, end.retry_in)


@dataclass(frozen=True)
class NextAttempt:
    """The attempt of the next task claimed with the end of this one (None: that task was
    not claimable, a duplicate delivery, cancelled or finished)."""

    claimed: ClaimedAttempt | None


class TaskExecutor:
    """Runs one delivery of a task id; safe to call any number of times for the same id."""

    def __init__(
        self,
        store: AttemptStore,
        kinds: KindRegistry,
        worker_name: str,
        lease: LeaseSettings,
        interrupts: Interrupts,
        observer: ExecutionObserver | None = None,
        preparer: TaskPreparer | None = None,
        served_queues: Sequence[str] = (),
    ) -> None:
        """`preparer`: how the steps a handler spawns are checked and completed (the service's
        default retry policy and payload bound; the built-in defaults when not given).
        `served_queues`: the queues this worker serves (empty: every one), whose released
        dependents it may run on the spot."""
        self._served_queues = tuple(served_queues)
        self._observer = observer or _NoExecutionObserver()
        self._store = store
        self._kinds = kinds
        self._preparer = preparer or TaskPreparer(kinds, RetryPolicy())
        self._worker_name = worker_name
        self._lease = lease
        self._watchdog = Watchdog(store, lease, interrupts)

    def interrupt_wanted(self) -> bool:
        return self._watchdog.interrupt_wanted()

    def execute(self, task_id: uuid.UUID) -> Outcome:
        """Claims task_id, runs it and records its end."""
        outcome, _ = self.execute_then(task_id)
        return outcome

    def execute_then(
        self,
        task_id: uuid.UUID,
        take_next: Callable[[], uuid.UUID | None] = no_next_task,
        claimed: NextAttempt | None = None,
        run_released: bool = False,
    ) -> tuple[Outcome, NextAttempt | None]:
        """Claims task_id (unless `claimed` holds its attempt, claimed with the end of the task
        before it), runs it and records its end. When the handler has returned, `take_next`
        names the task to run after it, if any: that one is claimed in the same statement as
        the end, and its attempt returned for the next call. (Asked only then, so that a task
        left waiting behind a slow one can still go to another worker meanwhile.) Without one,
        and with `run_released`, a dependent its success released is claimed instead, when its
        queue would let it through at once: the caller runs it next, with no dispatcher and no
        broker between the two."""
        if claimed is None:
            claimed = NextAttempt(self._claim(task_id))
        if claimed.claimed is None:
            next_id = take_next()
            return Outcome.SKIPPED, None if next_id is None else NextAttempt(self._claim(next_id))
        attempt = claimed.claimed
        self._observer.attempt_started(attempt)
        started = time.monotonic()
        outcome, end = self._run(attempt)
        following = self._record(end, take_next())
        self._observer.attempt_finished(attempt, outcome, time.monotonic() - started)
        if following is None and run_released and attempt.releases_alone:
            following = self._claim_released(attempt, outcome)
        return outcome, following

    def _claim_released(self, parent: ClaimedAttempt, outcome: Outcome) -> NextAttempt | None:
        if outcome is not Outcome.SUCCEEDED:
            return None
        try:
            claimed = self._store.claim_released(
                parent.task_id, self._worker_name, self._lease.duration, self._served_queues
            )
        except StorageUnavailable:
            return None  # the dispatcher lets it through, as any released task
        return None if claimed is None else NextAttempt(claimed)

    def _claim(self, task_id: uuid.UUID) -> ClaimedAttempt | None:
        return self._store.claim(task_id, self._worker_name, self._lease.duration)

    def _run(self, claimed: ClaimedAttempt) -> tuple[Outcome, AttemptEnd]:
        cancel_event = threading.Event()
        spawner = Spawner(claimed, self._preparer, self._store.queue_settings)
        progress = ProgressReporter(
            functools.partial(self._store.report_progress, claimed.task_id, claimed.attempt)
        )
        watch: _Watch | None = None
        try:
            with self._watchdog.watching(claimed, cancel_event) as watch:
                try:
                    result = self._run_handler(claimed, cancel_event, spawner, progress)
                finally:
                    progress.close()  # the last report lands before the end
        except Exception as exc:
            stop_reason = None if watch is None else watch.stop_reason
            error = self._error_of(exc, claimed, stop_reason)
            retry_in = retry_delay(
                claimed.retry_policy, claimed.attempt, self._is_retryable(claimed, exc)
            )
            end = AttemptEnd(claimed.task_id, claimed.attempt, error=error, retry_in=retry_in)
            if stop_reason is StopReason.CANCELLED:
                return Outcome.CANCELLED, end
            return (Outcome.FAILED if retry_in is None else Outcome.RETRYING), end
        spawned = tuple(spawner.spawned)
        return Outcome.SUCCEEDED, AttemptEnd(
            claimed.task_id, claimed.attempt, result, spawned=spawned
        )

    def _record(self, end: AttemptEnd, claim_next: uuid.UUID | None) -> NextAttempt | None:
        """Writes an attempt's end (and the next claim), waiting out a short database outage
        rather than losing a result that is already computed. A longer outage raises; the lease
        then brings the task back. Written again after an outage, the end is refused by the
        fence if it had been recorded, and the claim finds its task RUNNING: the lease brings
        that one back too."""
        deadline = time.monotonic() + 2 * self._lease.duration.total_seconds()
        delay = 0.1
        while True:
            try:
                return self._write(end, claim_next)
            except StorageUnavailable:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _write(self, end: AttemptEnd, claim_next: uuid.UUID | None) -> NextAttempt | None:
        if claim_next is not None and not end.spawned:
            return NextAttempt(
                self._store.end_and_claim(end, claim_next, self._worker_name, self._lease.duration)
            )
        record_end(self._store, end)
        return None if claim_next is None else NextAttempt(self._claim(claim_next))

    def _run_handler(
        self,
        claimed: ClaimedAttempt,
        cancel_event: threading.Event,
        spawner: Spawner,
        progress: ProgressReporter,
    ) -> JSON:
        kind = self._kinds.get(claimed.kind)
        payload = kind.parse_payload(claimed.payload)
        context = TaskContext(
            str(claimed.task_id),
            claimed.attempt,
            claimed.retry_policy.max_attempts,
            cancel_event,
            claimed.dependency_results,
            spawner.spawn if claimed.workflow_id is not None else None,
            progress,
        )
        result = kind.handler(payload, context)
        json.dumps(result)  # a result that cannot be stored is the handler's error
        check_json(result, "result")
        return result

    @staticmethod
    def _error_of(
        exc: Exception, claimed: ClaimedAttempt, stop_reason: StopReason | None
    ) -> AttemptError:
        if stop_reason is StopReason.TIMED_OUT:
            return timeout_error(claimed.timeout)
        if stop_reason is StopReason.CANCELLED and not isinstance(exc, TaskCancelled):
            return AttemptError(CANCELLED_ERROR, "stopped after a cancel request")
        return error_of(exc)

    def _is_retryable(self, claimed: ClaimedAttempt, exc: Exception) -> bool:
        if isinstance(exc, NonRetryableError | DomainError | TypeError):
            return False
        non_retryable = self._kinds.get(claimed.kind).non_retryable
        return not isinstance(exc, non_retryable)


def timeout_error(timeout: timedelta | None, suffix: str = "") -> AttemptError:
    seconds = timeout.total_seconds() if timeout else 0
    return AttemptError(TIMEOUT_ERROR, f"the attempt exceeded its timeout of {seconds:g}s{suffix}")
