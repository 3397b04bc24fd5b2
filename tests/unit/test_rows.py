"""The task insert's columns and the values a new task is stored with are one list."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from taskscheduler.adapters.postgres.rows import INSERTED_COLUMNS, insert_values
from taskscheduler.core.model import NewTask, RetryPolicy, TaskStatus


def test_every_value_of_a_new_task_has_its_column_in_the_insert() -> None:
    new = NewTask(
        id=uuid.uuid4(),
        tenant="t",
        kind="demo.echo",
        payload={},
        status=TaskStatus.PENDING,
        retry_policy=RetryPolicy(),
        timeout=None,
        run_at=datetime.now(UTC),
    )
    assert sorted(insert_values(new)) == sorted(INSERTED_COLUMNS)
