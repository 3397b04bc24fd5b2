"""The registry of task kinds: a handler per kind, with its payload schema and defaults."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import pydantic

from taskscheduler.core.errors import InvalidArgument
from taskscheduler.core.model import JSON, RetryPolicy, RetryPolicyOverride
from taskscheduler.core.progress import ProgressReporter, progress_of

P = TypeVar("P", bound=pydantic.BaseModel)


class PayloadModel(pydantic.BaseModel):
    """Base for payload schemas: unknown fields are an error, not silently dropped."""

    model_config = pydantic.ConfigDict(extra="forbid")


class TaskCancelled(Exception):
    """Raised by TaskContext.raise_if_cancelled when the task was cancelled while running."""


StepSpawner = Callable[..., str]
"""What context.spawn hands its arguments to (core.spawning.Spawner.spawn)."""


@dataclass(frozen=True)
class TaskContext:
    """What a handler may know about the attempt it runs in."""

    task_id: str
    attempt: int
    max_attempts: int
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    dependency_results: Mapping[str, JSON] = field(default_factory=dict)
    """The results of the tasks this one depends on: by step name in a workflow, by task id
    for a task scheduled with depends_on."""
    spawner: StepSpawner | None = field(default=None, repr=False)
    progress_reporter: ProgressReporter | None = field(default=None, repr=False)

    def spawn(
        self,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        depends_on: Iterable[str] = (),
        run_at: datetime | None = None,
        queue: str = "",
        priority: int | None = None,
        concurrency_key: str = "",
        timeout: timedelta | None = None,
        retry_policy: RetryPolicyOverride | None = None,
    ) -> str:
        """Adds a step to this task's workflow and returns its task id: a dynamic fan-out, and
        with `depends_on` (ids this attempt spawned) its fan-in. The step is named
        `<this step>/<name>` (name: `<kind>-<n>` when not given) and checked as ScheduleTask
        checks a task; it is stored only if this attempt succeeds, in the same transaction."""
        if self.spawner is None:
            raise InvalidArgument("spawn", "only a workflow's step may spawn steps")
        return self.spawner(
            kind,
            payload,
            name=name,
            depends_on=depends_on,
            run_at=run_at,
            queue=queue,
            priority=priority,
            concurrency_key=concurrency_key,
            timeout=timeout,
            retry_policy=retry_policy,
        )

    @property
    def cancel_requested(self) -> bool:
        """True once the task was cancelled (or its lease lost): stop soon, or be interrupted."""
        return self.cancel_event.is_set()

    def report_progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """Tells how far the work is: `done` units of `total` (None: the total is unknown), and
        what it is doing. Call it as often as you like: the task stores the latest report at
        most four times a second (and the last one before the handler returns), GetTask shows
        it, and status streams send it as a PROGRESS event. Raises ValueError for a negative or
        non-finite number."""
        if self.progress_reporter is None:
            progress_of(done, total, message)  # checked all the same
            return
        self.progress_reporter.report(done, total, message)

    def raise_if_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise TaskCancelled(f"task {self.task_id} was cancelled")


class NonRetryableError(Exception):
    """Raised by a handler when trying again cannot help: the task fails at once."""


@dataclass(frozen=True)
class Kind(Generic[P]):
    """A registered kind: its handler, payload schema and default policies."""

    name: str
    handler: Callable[[P, TaskContext], JSON]
    payload_model: type[P]
    retry_policy: RetryPolicyOverride = field(default_factory=RetryPolicyOverride)
    """The fields the kind sets; the others come from the service's default policy."""
    timeout: timedelta | None = None
    non_retryable: tuple[type[BaseException], ...] = field(default=())

    def parse_payload(self, payload: dict[str, JSON]) -> P:
        """Validates a payload, raising InvalidArgument that names the first bad field."""
        try:
            return self.payload_model.model_validate(payload)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(part) for part in ("payload", *first["loc"]))
            raise InvalidArgument(path, first["msg"], reason="INVALID_PAYLOAD") from None


class KindRegistry:
    """Maps kind names to Kind; the api validates against it, the worker runs from it."""

    def __init__(self) -> None:
        self._kinds: dict[str, Kind[Any]] = {}

    def register(
        self,
        name: str,
        *,
        payload: type[P],
        retry_policy: RetryPolicyOverride | RetryPolicy | None = None,
        timeout: timedelta | None = None,
        non_retryable: Iterable[type[BaseException]] = (),
    ) -> Callable[[Callable[[P, TaskContext], JSON]], Callable[[P, TaskContext], JSON]]:
        """Decorator that registers a handler under `name`. `retry_policy` sets the kind's
        defaults over the service's, field by field (a whole RetryPolicy sets every field)."""
        if isinstance(retry_policy, RetryPolicy):
            retry_policy = RetryPolicyOverride.every_field_of(retry_policy)

        def decorate(handler: Callable[[P, TaskContext], JSON]) -> Callable[[P, TaskContext], JSON]:
            if name in self._kinds:
                raise ValueError(f"kind {name!r} is registered twice")
            self._kinds[name] = Kind(
                name=name,
                handler=handler,
                payload_model=payload,
                retry_policy=retry_policy or RetryPolicyOverride(),
                timeout=timeout,
                non_retryable=tuple(non_retryable),
            )
            return handler

        return decorate

    def get(self, name: str) -> Kind[Any]:
        """Returns the kind, or raises InvalidArgument naming the `kind` field."""
        kind = self._kinds.get(name)
        if kind is None:
            known = ", ".join(sorted(self._kinds)) or "none"
            raise InvalidArgument("kind", f"unknown kind {name!r} (known: {known})", "UNKNOWN_KIND")
        return kind

    def names(self) -> list[str]:
        return sorted(self._kinds)


registry = KindRegistry()
"""The process-wide registry that handler modules register into."""

BUILTIN_HANDLER_MODULES = ("taskscheduler.handlers.demo", "taskscheduler.handlers.http")


def load_handler_modules(extra_modules: Iterable[str] = ()) -> KindRegistry:
    """Imports the built-in handler modules and those named by configuration."""
    for module in (*BUILTIN_HANDLER_MODULES, *extra_modules):
        importlib.import_module(module)
    return registry
