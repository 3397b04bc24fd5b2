"""The worker's use case: claim an attempt, run the kind's handler, record the outcome."""

from __future__ import annotations

import enum
import json
import traceback
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from taskscheduler.core import retry
from taskscheduler.core.errors import DomainError
from taskscheduler.core.kinds import KindRegistry, NonRetryableError, TaskContext
from taskscheduler.core.model import JSON, RetryPolicy

MAX_TRACEBACK_CHARS = 16_000
MAX_MESSAGE_CHARS = 4_000


@dataclass(frozen=True)
class ClaimedAttempt:
    """A task a worker has claimed: the row as the claim left it."""

    task_id: uuid.UUID
    kind: str
    payload: dict[str, JSON]
    attempt: int
    retry_policy: RetryPolicy
    timeout: timedelta | None


@dataclass(frozen=True)
class AttemptError:
    type: str
    message: str
    traceback: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> AttemptError:
        kind = type(exc)
        formatted = "".join(traceback.format_exception(exc))
        return cls(
            type=f"{kind.__module__}.{kind.__qualname__}",
            message=str(exc)[:MAX_MESSAGE_CHARS],
            traceback=formatted[-MAX_TRACEBACK_CHARS:],
        )


class AttemptStore(Protocol):
    """The worker's view of storage; completions are fenced by attempt number."""

    def claim(self, task_id: uuid.UUID, worker: str) -> ClaimedAttempt | None:
        """PENDING -> RUNNING with attempt + 1; None when the task is not PENDING."""
        ...

    def succeed(self, task_id: uuid.UUID, attempt: int, result: JSON) -> bool: ...

    def fail(
        self, task_id: uuid.UUID, attempt: int, error: AttemptError, retry_at: datetime | None
    ) -> bool:
        """RUNNING -> RETRYING (retry_at set) or FAILED (retry_at None)."""
        ...


class Outcome(enum.StrEnum):
    SKIPPED = "skipped"  # not claimable: a duplicate delivery, cancelled or finished
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"
    FAILED = "failed"


class TaskExecutor:
    """Runs one delivery of a task id; safe to call any number of times for the same id."""

    def __init__(self, store: AttemptStore, kinds: KindRegistry, worker_name: str) -> None:
        self._store = store
        self._kinds = kinds
        self._worker_name = worker_name

    def execute(self, task_id: uuid.UUID) -> Outcome:
        claimed = self._store.claim(task_id, self._worker_name)
        if claimed is None:
            return Outcome.SKIPPED
        try:
            result = self._run_handler(claimed)
        except Exception as exc:
            return self._record_failure(claimed, exc)
        self._store.succeed(claimed.task_id, claimed.attempt, result)
        return Outcome.SUCCEEDED

    def _run_handler(self, claimed: ClaimedAttempt) -> JSON:
        kind = self._kinds.get(claimed.kind)
        payload = kind.parse_payload(claimed.payload)
        context = TaskContext(
            str(claimed.task_id), claimed.attempt, claimed.retry_policy.max_attempts
        )
        result = kind.handler(payload, context)
        json.dumps(result)  # a result that cannot be stored is the handler's error
        return result

    def _is_retryable(self, claimed: ClaimedAttempt, exc: Exception) -> bool:
        if isinstance(exc, NonRetryableError | DomainError | TypeError):
            return False
        non_retryable = self._kinds.get(claimed.kind).non_retryable
        return not isinstance(exc, non_retryable)

    def _record_failure(self, claimed: ClaimedAttempt, exc: Exception) -> Outcome:
        error = AttemptError.from_exception(exc)
        has_attempts_left = claimed.attempt < claimed.retry_policy.max_attempts
        if has_attempts_left and self._is_retryable(claimed, exc):
            delay = retry.backoff(claimed.retry_policy, claimed.attempt)
            self._store.fail(claimed.task_id, claimed.attempt, error, datetime.now(UTC) + delay)
            return Outcome.RETRYING
        self._store.fail(claimed.task_id, claimed.attempt, error, None)
        return Outcome.FAILED
