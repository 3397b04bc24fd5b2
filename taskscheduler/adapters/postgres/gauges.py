"""The live counts that metrics read from PostgreSQL at each scrape: tasks by status, queues,
workers by state."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from taskscheduler.adapters.postgres.engine import storage_errors
from taskscheduler.adapters.postgres.queue_repository import QUEUE_DEPTHS
from taskscheduler.adapters.postgres.workers import WORKERS_BY_STATE
from taskscheduler.core.model import TaskStatus, WorkerState

LIVE_STATUSES = (TaskStatus.SCHEDULED, TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.RETRYING)

# One count per status, each served by a partial index of live rows: it costs the same with a
# million finished tasks in the table.
_LIVE_TASKS = sa.text(
    "SELECT "
    + ", ".join(
        f"(SELECT count(*) FROM tasks WHERE status = '{status.value}')" for status in LIVE_STATUSES
    )
)

# A scrape must answer even with no database, or one not migrated yet: whatever the database
# answers with is reported as unavailable.
_ANY_DATABASE_ERROR = (sa.exc.SQLAlchemyError,)


@dataclass(frozen=True)
class QueueDepth:
    """One queue's waiting (due or not) and running tasks, with the queue's state."""

    tenant: str
    queue: str
    state: str
    waiting: int
    running: int


class PostgresGauges:
    """Reads the live counts on a sync engine (Prometheus scrapes run in a thread of their own);
    raises StorageUnavailable when the database does not answer."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def live_tasks(self) -> dict[TaskStatus, int]:
        """The tasks of each live status, every status present."""
        with storage_errors(_ANY_DATABASE_ERROR), self._engine.connect() as conn:
            row = conn.execute(_LIVE_TASKS).one()
        return dict(zip(LIVE_STATUSES, row, strict=True))

    def queue_depths(self) -> list[QueueDepth]:
        """Every queue of every tenant."""
        with storage_errors(_ANY_DATABASE_ERROR), self._engine.connect() as conn:
            rows = conn.execute(QUEUE_DEPTHS).all()
        return [QueueDepth(*row) for row in rows]

    def workers_by_state(self) -> dict[WorkerState, int]:
        """The worker processes in each state, every state present."""
        with storage_errors(_ANY_DATABASE_ERROR), self._engine.connect() as conn:
            rows = conn.execute(WORKERS_BY_STATE).all()
        counts = dict.fromkeys(WorkerState, 0)
        counts.update({WorkerState(state): count for state, count in rows})
        return counts
