"""Reads of tasks by tenant and kind, queue or status, split as the indexes are: settled tasks
from the listing indexes, tasks in flight from ix_tasks_in_flight (see schema.SETTLED)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from taskscheduler.adapters.postgres.schema import IN_FLIGHT, SETTLED, tasks
from taskscheduler.core.model import TaskStatus

_MAY_BE_IN_FLIGHT = frozenset({TaskStatus.PENDING.value, TaskStatus.RUNNING.value})
NEWEST_FIRST = (tasks.c.created_at.desc(), tasks.c.id.desc())


def _parts(statuses: Collection[str]) -> list[list[sa.ColumnElement[bool] | sa.TextClause]]:
    """The conditions of each part, each with the predicate of the indexes that hold it (an
    empty `statuses`: every status)."""
    of_statuses = [tasks.c.status.in_(sorted(statuses))] if statuses else []
    parts: list[list[sa.ColumnElement[bool] | sa.TextClause]] = [[*of_statuses, SETTLED]]
    if not statuses or _MAY_BE_IN_FLIGHT.intersection(statuses):
        parts.append([*of_statuses, IN_FLIGHT])
    return parts


def count(*where: sa.ColumnElement[bool], statuses: Collection[str] = ()) -> sa.ColumnElement[int]:
    """How many tasks match: one scalar count per part, added."""
    counts = [
        sa.select(sa.func.count()).where(*where, *part).scalar_subquery()
        for part in _parts(statuses)
    ]
    total: sa.ColumnElement[int] = counts[0]
    for more in counts[1:]:
        total = total + more
    return total


def exists(
    *where: sa.ColumnElement[bool], statuses: Collection[str] = ()
) -> sa.ColumnElement[bool]:
    return sa.or_(*(sa.exists().where(*where, *part) for part in _parts(statuses)))


def newest_first(query: sa.Select[Any], statuses: Collection[str], limit: int) -> sa.Select[Any]:
    """The first `limit` rows of `query` (of tasks, filtered) newest first, merged from the
    newest of each part."""
    parts = [query.where(*part).order_by(*NEWEST_FIRST).limit(limit) for part in _parts(statuses)]
    if len(parts) == 1:
        return parts[0]
    merged = sa.union_all(*parts).subquery("listed")
    return sa.select(merged).order_by(merged.c.created_at.desc(), merged.c.id.desc()).limit(limit)
