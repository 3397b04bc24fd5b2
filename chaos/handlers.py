"""The fault suites' kinds: chaos.work, a short task (or one of `min_ms`) that records each
execution and when it ended, so the suites can count duplicated executions (the same attempt
run twice) and see a cut-off worker end its task late, and chaos.spawn, a workflow step that
spawns more."""

from __future__ import annotations

import os
import random
import time

import psycopg
import pydantic

from taskscheduler.core.kinds import PayloadModel, TaskContext, registry
from taskscheduler.settings import get_settings

EXECUTIONS_TABLE = """
CREATE TABLE IF NOT EXISTS chaos_executions (
    task_id uuid NOT NULL,
    attempt integer NOT NULL,
    pid integer NOT NULL,
    executed_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz,
    ended_by text  -- 'return', or the exception that stopped the handler
)
"""

_connection: psycopg.Connection[tuple[object, ...]] | None = None


def _record(task_id: str, attempt: int) -> None:
    global _connection
    if _connection is None or _connection.closed:
        _connection = psycopg.connect(get_settings().libpq_url, autocommit=True, connect_timeout=2)
    try:
        _connection.execute(
            "INSERT INTO chaos_executions (task_id, attempt, pid) VALUES (%s, %s, %s)",
            (task_id, attempt, os.getpid()),
        )
    except psycopg.OperationalError:
        _connection = None
        raise


def _record_end(task_id: str, attempt: int, ended_by: str) -> None:
    """Best effort, on a new connection when the link broke meanwhile (an update, safe to send
    twice); without it the suite sees no late end, which fails its check."""
    global _connection
    for _ in range(2):
        try:
            if _connection is None or _connection.closed:
                _connection = psycopg.connect(
                    get_settings().libpq_url, autocommit=True, connect_timeout=2
                )
            _connection.execute(
                "UPDATE chaos_executions SET ended_at = now(), ended_by = %s"
                " WHERE task_id = %s AND attempt = %s AND pid = %s",
                (ended_by, task_id, attempt, os.getpid()),
            )
            return
        except psycopg.OperationalError:
            _connection = None


class Work(PayloadModel):
    min_ms: int = pydantic.Field(default=0, ge=0, le=60_000)
    max_ms: int = pydantic.Field(default=50, ge=0, le=60_000)


@registry.register("chaos.work", payload=Work)
def work(payload: Work, context: TaskContext) -> dict[str, int]:
    _record(context.task_id, context.attempt)
    ended_by = "return"
    try:
        time.sleep(random.uniform(payload.min_ms, max(payload.min_ms, payload.max_ms)) / 1000)
    except BaseException as stopped:  # the watchdog's interrupt, once the lease is gone
        ended_by = type(stopped).__name__
        raise
    finally:
        _record_end(context.task_id, context.attempt, ended_by)
    return {"attempt": context.attempt}


class Spawn(PayloadModel):
    parts: int = pydantic.Field(default=5, ge=1, le=100)


@registry.register("chaos.spawn", payload=Spawn)
def spawn(payload: Spawn, context: TaskContext) -> dict[str, int]:
    """A workflow step that records its execution, spawns `parts` chaos.work steps and one
    that waits for them all (a fan-in), then sleeps a little: a kill may land after the
    spawns and before the success, which must then store none of them."""
    _record(context.task_id, context.attempt)
    parts = [
        context.spawn("chaos.work", {"max_ms": 30}, name=f"part-{n}") for n in range(payload.parts)
    ]
    context.spawn("chaos.work", {"max_ms": 30}, name="join", depends_on=parts)
    time.sleep(random.uniform(0, 0.2))
    return {"attempt": context.attempt}
