"""Domain errors. Transports map them to status codes in one table each."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the core raises on purpose; `reason` is a stable UPPER_SNAKE code."""

    reason = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    """The request is malformed; `field` names the offending field (dotted path)."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, message: str, reason: str = "INVALID_ARGUMENT") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message
        self.reason = reason

    def within(self, prefix: str) -> InvalidArgument:
        """The same error for a field nested under `prefix` (an item of a batch)."""
        return InvalidArgument(f"{prefix}.{self.field}", self.detail, self.reason)


def unknown_queue(field: str, name: str) -> InvalidArgument:
    """A request names a queue the tenant does not have."""
    return InvalidArgument(field, f"no queue named {name!r}; create it first")


class TaskNotFound(DomainError):
    reason = "TASK_NOT_FOUND"

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} not found")
        self.task_id = task_id


class TaskFinished(DomainError):
    """The task is terminal and the operation would change it."""

    reason = "TASK_ALREADY_FINISHED"


class TaskNotFinished(DomainError):
    """The operation needs a finished task (a retry of one still running would run it twice)."""

    reason = "TASK_NOT_FINISHED"


class QueueNotFound(DomainError):
    reason = "QUEUE_NOT_FOUND"

    def __init__(self, name: str) -> None:
        super().__init__(f"queue {name!r} not found")


class QueueExists(DomainError):
    reason = "QUEUE_ALREADY_EXISTS"

    def __init__(self, name: str) -> None:
        super().__init__(f"queue {name!r} already exists")


class QueueInUse(DomainError):
    """The queue cannot be deleted: it is the default queue, or tasks still wait or run in it."""

    reason = "QUEUE_IN_USE"


class ScheduleNotFound(DomainError):
    reason = "SCHEDULE_NOT_FOUND"

    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"schedule {schedule_id} not found")


class WorkflowNotFound(DomainError):
    reason = "WORKFLOW_NOT_FOUND"

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"workflow {workflow_id} not found")


class WorkflowFinished(DomainError):
    """Every step of the workflow has finished: there is nothing to cancel."""

    reason = "WORKFLOW_ALREADY_FINISHED"


class IdempotencyConflict(DomainError):
    """The idempotency key was used before with a different request."""

    reason = "IDEMPOTENCY_KEY_REUSED"


class Unauthenticated(DomainError):
    """No credentials, or credentials that do not verify. The message never echoes a token."""

    reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    """The caller is known but lacks the scope the operation needs."""

    reason = "MISSING_SCOPE"


class RateLimited(DomainError):
    """The caller's tenant is over its rate limit; `retry_after` says when to try again."""

    reason = "RATE_LIMITED"

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limit exceeded; retry in {retry_after:.2f}s")
        self.retry_after = retry_after


class StorageUnavailable(DomainError):
    """The database cannot be reached; the caller may retry."""

    reason = "STORAGE_UNAVAILABLE"


class BrokerUnavailable(DomainError):
    """The broker did not take a message after a few tries. Never a caller's problem: the task
    is stored, and the dispatcher publishes again what no worker claimed."""

    reason = "BROKER_UNAVAILABLE"
