"""The edges of the dependency graph: a new task's dependencies checked and held, its edges
written (the settle_dependents trigger of schema.py does the rest when a dependency ends)."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from taskscheduler.adapters.postgres.schema import task_dependencies, tasks
from taskscheduler.core.errors import InvalidArgument
from taskscheduler.core.model import NewTask, TaskStatus
from taskscheduler.core.states import DEPENDENCY_FAILED

S = TaskStatus
_ENDED_BADLY = (S.FAILED, S.CANCELLED)
_IDS = sa.bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))

# FOR SHARE: a dependency's end (an UPDATE of its row) waits until the new task and its edges
# have committed, so that the end's trigger finds the edge; and the new task sees the end of a
# dependency that committed first. has_dependents is set only where it is not yet (no new row
# version for a dependency that had dependents already).
_MARK = (
    tasks.update()
    .where(tasks.c.tenant == sa.bindparam("of_tenant"), tasks.c.id == sa.func.any(_IDS))
    .where(sa.not_(tasks.c.has_dependents))
    .values(has_dependents=True)
)
_HOLD = (
    sa.select(tasks.c.id, tasks.c.status)
    .where(tasks.c.tenant == sa.bindparam("of_tenant"), tasks.c.id == sa.func.any(_IDS))
    .with_for_update(read=True)
)
_EDGES = sa.insert(task_dependencies).from_select(
    ["task_id", "depends_on"],
    sa.select(
        sa.func.unnest(sa.bindparam("children", type_=ARRAY(UUID(as_uuid=True)))),
        sa.func.unnest(sa.bindparam("parents", type_=ARRAY(UUID(as_uuid=True)))),
    ),
)


async def hold_dependencies(conn: AsyncConnection, new: NewTask) -> NewTask:
    """The task with the status its dependencies give it, each of them held until the commit:
    BLOCKED on those not yet succeeded, CANCELLED when one failed or was cancelled (see
    record_cancelled), its own status when all have succeeded. InvalidArgument naming
    depends_on[i] for an id that is not one of the tenant's tasks."""
    if not new.depends_on:
        return new
    parameters = {"of_tenant": new.tenant, "ids": list(new.depends_on)}
    await conn.execute(_MARK, parameters)
    statuses = {row.id: TaskStatus(row.status) for row in await conn.execute(_HOLD, parameters)}
    for index, parent in enumerate(new.depends_on):
        if parent not in statuses:
            raise InvalidArgument(f"depends_on[{index}]", f"no task {parent}")
    if any(statuses[parent] in _ENDED_BADLY for parent in new.depends_on):
        return dataclasses.replace(new, status=S.CANCELLED, blocked_on=0)
    waiting = sum(statuses[parent] is not S.SUCCESS for parent in new.depends_on)
    status = S.BLOCKED if waiting else new.status
    return dataclasses.replace(new, status=status, blocked_on=waiting)


async def record_cancelled(conn: AsyncConnection, news: list[NewTask]) -> None:
    """Gives the tasks stored CANCELLED for a dependency that had failed or been cancelled
    their finish time and error, as the trigger gives those cancelled later."""
    for new in news:
        if new.status is not S.CANCELLED or not new.depends_on:
            continue
        await conn.execute(
            tasks.update()
            .where(tasks.c.id == new.id)
            .values(
                finished_at=sa.func.now(),
                error=f"{DEPENDENCY_FAILED}: a dependency had failed or been cancelled",
            )
        )


async def insert_edges(conn: AsyncConnection, news: list[NewTask]) -> None:
    """Writes the edges of the tasks stored (each task's dependencies, in one statement)."""
    children = [new.id for new in news for _ in new.depends_on]
    if not children:
        return
    parents = [parent for new in news for parent in new.depends_on]
    await conn.execute(_EDGES, {"children": children, "parents": parents})
