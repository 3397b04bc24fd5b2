"""context.spawn: the steps a handler adds to its own workflow while it runs, kept until its
attempt succeeds and stored in the same transaction as that success (a handler that runs again
after a lost worker spawns nothing twice)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from taskscheduler.core.errors import InvalidArgument
from taskscheduler.core.limits import MAX_SPAWNED, MAX_STEP_NAME_LENGTH
from taskscheduler.core.model import (
    DEFAULT_QUEUE,
    Caller,
    NewTask,
    QueueSettings,
    RetryPolicyOverride,
    TaskStatus,
)
from taskscheduler.core.ports import ClaimedAttempt
from taskscheduler.core.queues import check_queue_name
from taskscheduler.core.tasks import ScheduleRequest, TaskPreparer

QueueLookup = Callable[[str, str], QueueSettings | None]
"""(tenant, queue name) -> the queue's settings, None when it does not exist."""


class Spawner:
    """The steps one attempt spawns, validated as CreateWorkflow validates its steps, each
    named `<spawning step>/<name>` (unique in the workflow: the spawning step succeeds once)."""

    def __init__(
        self, claimed: ClaimedAttempt, preparer: TaskPreparer, queue_settings: QueueLookup
    ) -> None:
        self._claimed = claimed
        self._preparer = preparer
        self._queue_settings = queue_settings
        self.spawned: list[NewTask] = []

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
        claimed = self._claimed
        if claimed.workflow_id is None:
            raise InvalidArgument(
                "spawn", "only a workflow's step may spawn steps (create it with CreateWorkflow)"
            )
        if len(self.spawned) >= MAX_SPAWNED:
            raise InvalidArgument("spawn", f"an attempt may spawn at most {MAX_SPAWNED} steps")
        step_name = f"{claimed.step_name}/{name or f'{kind}-{len(self.spawned) + 1}'}"
        if len(step_name) > MAX_STEP_NAME_LENGTH:
            raise InvalidArgument("spawn.name", f"{step_name[:64]!r}... is too long")
        if any(new.step_name == step_name for new in self.spawned):
            raise InvalidArgument("spawn.name", f"{step_name!r} was spawned already")
        parents = self._parents(depends_on)
        request = ScheduleRequest(
            kind=kind,
            payload=dict(payload or {}),
            run_at=run_at,
            retry_policy=retry_policy or RetryPolicyOverride(),
            timeout=timeout,
            queue=queue,
            priority=priority,
            concurrency_key=concurrency_key,
        )
        caller = Caller(claimed.tenant, frozenset())
        try:
            new = self._preparer.prepare(
                caller, request, datetime.now(UTC), self._queue(claimed.tenant, queue)
            )
        except InvalidArgument as error:
            raise error.within("spawn") from None
        self.spawned.append(
            dataclasses.replace(
                new,
                workflow_id=claimed.workflow_id,
                step_name=step_name,
                depends_on=parents,
                blocked_on=len(parents),
                status=TaskStatus.BLOCKED if parents else new.status,
            )
        )
        return str(new.id)

    def _parents(self, depends_on: Iterable[str]) -> tuple[uuid.UUID, ...]:
        """The ids of steps this attempt spawned before, each marked as depended on."""
        index_of = {str(new.id): index for index, new in enumerate(self.spawned)}
        parents: list[uuid.UUID] = []
        for position, task_id in enumerate(depends_on):
            index = index_of.get(task_id)
            if index is None:
                raise InvalidArgument(
                    f"spawn.depends_on[{position}]", "must name a step this attempt spawned"
                )
            parent = self.spawned[index]
            self.spawned[index] = dataclasses.replace(parent, has_dependents=True)
            parents.append(parent.id)
        return tuple(dict.fromkeys(parents))

    def _queue(self, tenant: str, name: str) -> QueueSettings:
        name = name or DEFAULT_QUEUE
        check_queue_name(name, "queue")
        settings = self._queue_settings(tenant, name)
        if settings is None:
            if name != DEFAULT_QUEUE:
                raise InvalidArgument("queue", f"no queue named {name!r}")
            return QueueSettings()
        return settings
