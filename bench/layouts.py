"""WAL a task of the `tasks` layout against a narrow live-work table, the same row changes
replayed on an empty database: why the hot path keeps one table (README, Performance).

    python -m bench.layouts postgresql://USER@HOST:PORT/DATABASE   # a database of its own

Each layout's tables are made anew (the current one by schema.py itself), checkpointed, then
3,000 tasks go through what the end-to-end run does to them: inserted 500 a statement, let
through 16 a statement, claimed with their attempt row, ended with it. The WAL is the server's
own count (pg_current_wal_lsn), so the figure holds whatever the machine's load.

The narrow layout is the lightest one could build: the record written at insert and at its end
only, everything that moves in flight (let-through, lease, republish time) in a table of its
own, deleted at the end; in its second form the listing indexes hold ended tasks only (tasks in
flight would be listed from the narrow table, at a cost this replay leaves out).
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable

import psycopg
import sqlalchemy as sa

from taskscheduler.adapters.postgres.schema import metadata

TASKS = 3_000
INSERT_BATCH = 500
LET_THROUGH_BATCH = 16

Connection = psycopg.Connection[tuple[object, ...]]

INSERT = """INSERT INTO tasks (id, status, tenant, kind, payload, queue, priority, max_attempts,
    initial_backoff_seconds, max_backoff_seconds, backoff_multiplier, jitter, run_at)
    SELECT id, 'PENDING', 'default', 'noop', '{}'::jsonb, 'default', 5, 3, 1, 60, 2, true, now()
    FROM unnest(%s::uuid[]) AS id"""
INSERT_LIVE = """INSERT INTO live (task_id, tenant, queue, priority, run_at, created_at, attempt)
    SELECT id, 'default', 'default', 5, now(), now(), 0 FROM unnest(%s::uuid[]) AS id"""
RECORD_ATTEMPT = """INSERT INTO task_attempts (task_id, number, status, worker, started_at)
    SELECT id, attempt, 'RUNNING', 'w1', now() FROM claimed"""
END_ATTEMPT = """UPDATE task_attempts SET status = 'SUCCESS', finished_at = now() FROM ended
    WHERE task_id = ended.id AND number = 1"""

ONE_TABLE = {
    "let through": """UPDATE tasks SET dispatched_at = now(), updated_at = now(),
        republish_at = now() + interval '5 minutes', publish_count = publish_count + 1
        WHERE id = ANY(%s)""",
    "claim": f"""WITH claimed AS (UPDATE tasks SET status = 'RUNNING', attempt = attempt + 1,
        started_at = now(), updated_at = now(), worker = 'w1',
        lease_expires_at = now() + interval '30 seconds' WHERE id = %s RETURNING id, attempt)
        {RECORD_ATTEMPT}""",
    "end": f"""WITH ended AS (UPDATE tasks SET status = 'SUCCESS', result = '{{}}'::jsonb,
        finished_at = now(), updated_at = now() WHERE id = %s RETURNING id) {END_ATTEMPT}""",
}
NARROW = {
    "let through": """UPDATE live SET dispatched_at = now(),
        republish_at = now() + interval '5 minutes' WHERE task_id = ANY(%s)""",
    "claim": f"""WITH claimed AS (UPDATE live SET attempt = attempt + 1, worker = 'w1',
        lease_expires_at = now() + interval '30 seconds' WHERE task_id = %s
        RETURNING task_id AS id, attempt) {RECORD_ATTEMPT}""",
    "end": f"""WITH gone AS (DELETE FROM live WHERE task_id = %s RETURNING task_id, attempt),
        ended AS (UPDATE tasks SET status = 'SUCCESS', attempt = gone.attempt, worker = 'w1',
        result = '{{}}'::jsonb, started_at = now(), finished_at = now(), updated_at = now()
        FROM gone WHERE id = gone.task_id RETURNING id) {END_ATTEMPT}""",
}
LIVE_TABLE = (
    """CREATE TABLE live (task_id uuid PRIMARY KEY, tenant text NOT NULL, queue text NOT NULL,
    priority smallint NOT NULL, run_at timestamptz NOT NULL, created_at timestamptz NOT NULL,
    concurrency_key text, attempt int NOT NULL, dispatched_at timestamptz,
    lease_expires_at timestamptz, republish_at timestamptz, worker text)""",
    """CREATE INDEX ix_live_ready ON live (tenant, queue, priority DESC, run_at, created_at)
    WHERE dispatched_at IS NULL""",
    """CREATE INDEX ix_live_in_flight ON live (tenant, queue, concurrency_key)
    WHERE dispatched_at IS NOT NULL""",
    "CREATE INDEX ix_live_lease ON live (lease_expires_at) WHERE lease_expires_at IS NOT NULL",
    """CREATE INDEX ix_live_republish ON live (republish_at)
    WHERE republish_at IS NOT NULL AND lease_expires_at IS NULL""",
)
MOVED_TO_LIVE = (
    "ix_tasks_ready",
    "ix_tasks_in_flight",
    "ix_tasks_lease_expires_at",
    "ix_tasks_republish_at",
    "ix_tasks_due",
    "ix_tasks_schedule_live",
)
LISTING = {
    "ix_tasks_tenant_created_at_id": "tenant, created_at DESC, id DESC",
    "ix_tasks_tenant_status_created_at_id": "tenant, status, created_at DESC, id DESC",
    "ix_tasks_tenant_kind_created_at_id": "tenant, kind, created_at DESC, id DESC",
    "ix_tasks_tenant_queue_created_at_id": "tenant, queue, created_at DESC, id DESC",
}
ENDED = " WHERE status IN ('SUCCESS', 'FAILED', 'CANCELLED')"


def one_table(conn: Connection, url: str) -> None:
    """schema.py as it is."""
    conn.execute("DROP SCHEMA public CASCADE")
    conn.execute("CREATE SCHEMA public")
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    metadata.create_all(engine)
    engine.dispose()


def narrow(listing_where: str) -> Callable[[Connection, str], None]:
    def build(conn: Connection, url: str) -> None:
        one_table(conn, url)
        for name in MOVED_TO_LIVE:
            conn.execute(f"DROP INDEX {name}")
        for name, columns in LISTING.items():
            conn.execute(f"DROP INDEX {name}")
            conn.execute(f"CREATE INDEX {name} ON tasks ({columns}){listing_where}")
        for statement in LIVE_TABLE:
            conn.execute(statement)

    return build


def wal_per_task(conn: Connection, statements: dict[str, str], live: bool) -> float:
    ids = [uuid.uuid4() for _ in range(TASKS)]
    conn.execute("CHECKPOINT")
    start = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
    for first in range(0, TASKS, INSERT_BATCH):
        with conn.transaction():
            conn.execute(INSERT, (ids[first : first + INSERT_BATCH],))
            if live:
                conn.execute(INSERT_LIVE, (ids[first : first + INSERT_BATCH],))
    for first in range(0, TASKS, LET_THROUGH_BATCH):
        conn.execute(statements["let through"], (ids[first : first + LET_THROUGH_BATCH],))
    for task_id in ids:
        conn.execute(statements["claim"], (task_id,))
        conn.execute(statements["end"], (task_id,))
    assert start is not None
    row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", start).fetchone()
    assert row is not None
    return float(str(row[0])) / TASKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="a database of its own: its public schema is dropped")
    url = parser.parse_args().url
    layouts: list[tuple[str, Callable[[Connection, str], None], dict[str, str], bool]] = [
        ("one table (schema.py)", one_table, ONE_TABLE, False),
        ("narrow live table", narrow(""), NARROW, True),
        ("narrow live table, listing ended tasks only", narrow(ENDED), NARROW, True),
    ]
    with psycopg.connect(url, autocommit=True) as conn:
        for name, build, statements, live in layouts:
            build(conn, url)
            print(f"{name}: {wal_per_task(conn, statements, live):,.0f} bytes of WAL a task")


if __name__ == "__main__":
    main()
