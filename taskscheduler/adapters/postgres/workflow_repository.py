"""The api's workflow storage (async): a workflow and its steps stored in one transaction, read
with its steps, listed, cancelled."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from taskscheduler.adapters.postgres.dependencies import insert_edges
from taskscheduler.adapters.postgres.engine import storage_errors
from taskscheduler.adapters.postgres.queue_repository import hold_queues
from taskscheduler.adapters.postgres.schema import task_dependencies, tasks, workflows
from taskscheduler.adapters.postgres.task_repository import (
    PostgresTaskRepository,
    cancel_statement,
)
from taskscheduler.core.errors import unknown_queue
from taskscheduler.core.model import (
    FailurePolicy,
    NewWorkflow,
    ResourcePosition,
    TaskStatus,
    Workflow,
    WorkflowStatus,
    WorkflowStep,
)
from taskscheduler.core.states import CANCELLABLE

S = TaskStatus
_CANCELLABLE = sorted(status.value for status in CANCELLABLE)
_GET = sa.select(workflows).where(
    workflows.c.id == sa.bindparam("workflow_id"), workflows.c.tenant == sa.bindparam("tenant")
)
_parent = tasks.alias("parent")
_STEPS = (
    sa.select(
        tasks.c.id,
        tasks.c.step_name,
        tasks.c.status,
        tasks.c.kind,
        tasks.c.started_at,
        tasks.c.finished_at,
        tasks.c.version,
        sa.func.array_remove(sa.func.array_agg(_parent.c.step_name), None).label("depends_on"),
    )
    .select_from(
        tasks.outerjoin(task_dependencies, task_dependencies.c.task_id == tasks.c.id).outerjoin(
            _parent, _parent.c.id == task_dependencies.c.depends_on
        )
    )
    .where(tasks.c.workflow_id == sa.bindparam("workflow_id"))
    .group_by(tasks.c.id)
)


_STOP_ROUNDS = 3
_STOPPED_ERROR = "taskscheduler.WorkflowStopped: its workflow was cancelled or a step failed"
_MARKED = (
    sa.select(workflows.c.id)
    .where(
        workflows.c.cancel_requested_at.isnot(None),
        workflows.c.status == WorkflowStatus.RUNNING.value,
    )
    .order_by(workflows.c.cancel_requested_at)
    .limit(sa.bindparam("most", type_=sa.Integer()))
)
_UNSTOPPED = sa.select(tasks.c.id, tasks.c.status).where(
    tasks.c.workflow_id == sa.bindparam("workflow_id"),
    tasks.c.status.in_(_CANCELLABLE),
    tasks.c.cancel_requested_at.is_(None),
)
_LOCK_WORKFLOW = (
    sa.select(workflows.c.id)
    .where(workflows.c.id == sa.bindparam("workflow_id"))
    .with_for_update(key_share=True)  # FOR NO KEY UPDATE, as a step's end takes it
)
_CANCEL_STEP = cancel_statement(
    tasks.c.id == sa.bindparam("step_id"),
    tasks.c.status != S.BLOCKED.value,
    tasks.c.cancel_requested_at.is_(None),
    error=_STOPPED_ERROR,
)
_CANCEL_BLOCKED = cancel_statement(
    tasks.c.workflow_id == sa.bindparam("of_workflow"),
    tasks.c.status == S.BLOCKED.value,
    error=_STOPPED_ERROR,
)


def _workflow_from_row(row: sa.RowMapping, steps: tuple[WorkflowStep, ...] = ()) -> Workflow:
    return Workflow(
        id=row["id"],
        tenant=row["tenant"],
        name=row["name"],
        status=WorkflowStatus(row["status"]),
        on_failure=FailurePolicy(row["on_failure"]),
        create_time=row["created_at"],
        update_time=row["updated_at"],
        finish_time=row["finished_at"],
        request_id=row["request_id"] or "",
        request_fingerprint=row["request_fingerprint"] or "",
        step_count=row["steps"],
        steps=steps,
    )


def _in_dependency_order(steps: list[WorkflowStep]) -> tuple[WorkflowStep, ...]:
    """Each step after the steps it depends on, ties by name: the order a reader follows."""
    by_name = {step.name: step for step in steps}
    placed: dict[str, None] = {}

    def place(step: WorkflowStep) -> None:
        if step.name in placed:
            return
        for name in sorted(step.depends_on):
            if name in by_name:
                place(by_name[name])
        placed[step.name] = None

    for step in sorted(steps, key=lambda step: step.name):
        place(step)
    return tuple(by_name[name] for name in placed)


class PostgresWorkflowRepository:
    """Implements core.ports.WorkflowRepository; the steps are tasks, stored by the task
    repository's insert in the workflow's transaction (roots let through at once as any task)."""

    def __init__(
        self,
        engine: AsyncEngine,
        task_repository: PostgresTaskRepository,
        idempotency_window: timedelta,
    ) -> None:
        self._engine = engine
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._tasks = task_repository
        self._idempotency_window = idempotency_window

    async def create(self, new: NewWorkflow) -> tuple[Workflow, bool]:
        with storage_errors():
            async with self._engine.begin() as conn:
                if new.request_id:
                    existing = await self._with_key(conn, new.tenant, new.request_id)
                    if existing is not None:
                        return existing, False
                await hold_queues(conn, new.tenant, {step.queue for step in new.steps})
                inserted = await self._insert_workflow(conn, new)
                if inserted is None:  # another call stored the key meanwhile
                    existing = await self._with_key(conn, new.tenant, new.request_id)
                    assert existing is not None
                    return existing, False
                steps = list(new.steps)
                stored, through = await self._tasks.store_in(conn, steps)
                for index, step in enumerate(steps):
                    if step.id not in stored:
                        raise unknown_queue(f"steps[{index}].task.queue", step.queue)
                await insert_edges(conn, steps)
                workflow = await self._read(conn, new.tenant, new.id)
        self._tasks.publish_soon(through)
        assert workflow is not None
        return workflow, True

    async def _insert_workflow(self, conn: AsyncConnection, new: NewWorkflow) -> uuid.UUID | None:
        statement = (
            pg_insert(workflows)
            .values(
                id=new.id,
                tenant=new.tenant,
                name=new.name,
                on_failure=new.on_failure.value,
                steps=len(new.steps),
                unfinished=len(new.steps),
                request_id=new.request_id or None,
                request_fingerprint=new.request_fingerprint or None,
            )
            .on_conflict_do_nothing(
                index_elements=[workflows.c.tenant, workflows.c.request_id],
                index_where=workflows.c.request_id.isnot(None),
            )
            .returning(workflows.c.id)
        )
        inserted: uuid.UUID | None = (await conn.execute(statement)).scalar()
        return inserted

    async def _with_key(
        self, conn: AsyncConnection, tenant: str, request_id: str
    ) -> Workflow | None:
        """The workflow stored under the key within the idempotency window (an older one's key
        is freed)."""
        of_key = (workflows.c.tenant == tenant, workflows.c.request_id == request_id)
        await conn.execute(
            workflows.update()
            .where(*of_key, workflows.c.created_at < sa.func.now() - self._idempotency_window)
            .values(request_id=None, request_fingerprint=None)
        )
        found = (await conn.execute(sa.select(workflows.c.id).where(*of_key))).scalar()
        return None if found is None else await self._read(conn, tenant, found)

    async def get(self, tenant: str, workflow_id: uuid.UUID) -> Workflow | None:
        with storage_errors():
            async with self._engine.connect() as conn:
                return await self._read(conn, tenant, workflow_id)

    async def _read(
        self, conn: AsyncConnection, tenant: str, workflow_id: uuid.UUID
    ) -> Workflow | None:
        parameters = {"workflow_id": workflow_id, "tenant": tenant}
        row = (await conn.execute(_GET, parameters)).mappings().first()
        if row is None:
            return None
        steps = [
            WorkflowStep(
                name=step["step_name"],
                task_id=step["id"],
                status=S(step["status"]),
                kind=step["kind"],
                depends_on=tuple(sorted(step["depends_on"])),
                start_time=step["started_at"],
                finish_time=step["finished_at"],
                version=step["version"],
            )
            for step in (await conn.execute(_STEPS, parameters)).mappings()
        ]
        return _workflow_from_row(row, _in_dependency_order(steps))

    async def list(
        self,
        tenant: str,
        statuses: Collection[WorkflowStatus],
        limit: int,
        after: ResourcePosition | None,
    ) -> list[Workflow]:
        """Newest first, without their steps."""
        query = sa.select(workflows).where(workflows.c.tenant == tenant)
        if statuses:
            query = query.where(workflows.c.status.in_(sorted(s.value for s in statuses)))
        if after is not None:
            position = (after.create_time, after.resource_id)
            query = query.where(sa.tuple_(workflows.c.created_at, workflows.c.id) < position)
        query = query.order_by(workflows.c.created_at.desc(), workflows.c.id.desc()).limit(limit)
        with storage_errors():
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).mappings().all()
        return [_workflow_from_row(row) for row in rows]

    async def cancel(self, tenant: str, workflow_id: uuid.UUID) -> Workflow | None:
        """Marks the workflow to stop, then stops it (a dispatcher finishes the work if this
        process dies meanwhile); None for an unknown workflow."""
        mark = (
            workflows.update()
            .where(
                workflows.c.id == workflow_id,
                workflows.c.tenant == tenant,
                workflows.c.cancel_requested_at.is_(None),
            )
            .values(cancel_requested_at=sa.func.now(), updated_at=sa.func.now())
        )
        with storage_errors():
            async with self._autocommit.connect() as conn:
                await conn.execute(mark)
        await self.stop(workflow_id)
        return await self.get(tenant, workflow_id)

    async def stop_marked(self, limit: int) -> int:
        """Stops up to `limit` workflows marked to stop whose steps have not all finished;
        returns how many steps it cancelled."""
        with storage_errors():
            async with self._autocommit.connect() as conn:
                marked = (await conn.execute(_MARKED, {"most": limit})).scalars().all()
        cancelled = 0
        for workflow_id in marked:
            cancelled += await self.stop(workflow_id)
        return cancelled

    async def stop(self, workflow_id: uuid.UUID) -> int:
        """Cancels every unfinished step of the workflow (asks a RUNNING one to stop); returns
        how many it cancelled. Each step in a transaction of its own, taking its row and then
        the workflow's (in the trigger), as a step's end does; the BLOCKED ones, which only
        transactions holding the workflow's row lock, together after the workflow's row. Never
        the workflow's row first and then a step that may be ending: that end, holding its
        row and waiting for the workflow's, would deadlock with it."""
        cancelled = 0
        for _ in range(_STOP_ROUNDS):  # a step released meanwhile is cancelled next round
            with storage_errors():
                async with self._autocommit.connect() as conn:
                    rows = (await conn.execute(_UNSTOPPED, {"workflow_id": workflow_id})).all()
                    if not rows:
                        return cancelled
                    for step_id, status in rows:
                        if status != S.BLOCKED.value:
                            result = await conn.execute(_CANCEL_STEP, {"step_id": step_id})
                            cancelled += result.rowcount
                if any(status == S.BLOCKED.value for _, status in rows):
                    async with self._engine.begin() as conn:
                        await conn.execute(_LOCK_WORKFLOW, {"workflow_id": workflow_id})
                        result = await conn.execute(_CANCEL_BLOCKED, {"of_workflow": workflow_id})
                        cancelled += result.rowcount
        return cancelled
