"""The names of every tenant's queues, for a worker serving them all, and word of new ones."""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import Any

import psycopg

from taskscheduler.adapters.postgres.engine import storage_errors
from taskscheduler.adapters.postgres.schema import WAKE_CHANNEL

CONNECT_TIMEOUT_SECONDS = 5

_NAMES = "SELECT DISTINCT name FROM queues"

# The watcher runs in a thread of its own with one plain connection (no event loop, no pool):
# any error of it ends the watch, to be started again.
_ANY_DRIVER_ERROR = (psycopg.Error,)


class PostgresQueueNames:
    """Reads the queue names (any tenant's) on connections of its own; raises
    StorageUnavailable when the database does not answer."""

    def __init__(self, libpq_url: str) -> None:
        self._url = libpq_url

    def read(self) -> frozenset[str]:
        """The names now."""
        with (
            storage_errors(_ANY_DRIVER_ERROR),
            psycopg.connect(self._url, connect_timeout=CONNECT_TIMEOUT_SECONDS) as conn,
        ):
            return _names(conn)

    def watch(self, interval: float, stopping: threading.Event) -> Generator[frozenset[str]]:
        """The names now, then again whenever a queue may have been created (a NOTIFY on the
        wake channel) and at least every `interval` seconds, until `stopping` is set."""
        with (
            storage_errors(_ANY_DRIVER_ERROR),
            psycopg.connect(
                self._url, connect_timeout=CONNECT_TIMEOUT_SECONDS, autocommit=True
            ) as conn,
        ):
            conn.execute(f"LISTEN {WAKE_CHANNEL}")
            while not stopping.is_set():
                yield _names(conn)
                for _ in conn.notifies(timeout=interval, stop_after=1):
                    pass  # a queue may have been created: read the names again


def _names(conn: psycopg.Connection[Any]) -> frozenset[str]:
    return frozenset(row[0] for row in conn.execute(_NAMES).fetchall())
