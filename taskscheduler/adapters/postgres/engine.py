"""Engines for the async (api, dispatcher) and sync (worker) sides, and storage error mapping."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from taskscheduler.core.errors import StorageUnavailable
from taskscheduler.settings import Settings

# Errors that mean "the database is unreachable or went away", as opposed to a bug.
CONNECTION_ERRORS = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,
    psycopg.OperationalError,  # the attempt store's own connections (and their pool's timeout)
    psycopg.InterfaceError,
    OSError,
)


def connection_options(settings: Settings) -> dict[str, Any]:
    """libpq options of every connection of the service."""
    lock_timeout_ms = int(settings.db_lock_timeout_seconds * 1000)
    return {
        "connect_timeout": max(1, int(settings.db_connect_timeout_seconds)),
        # Guarded UPDATEs never need to wait long for a row; a stuck lock becomes an error.
        "options": f"-c lock_timeout={lock_timeout_ms}",
    }


def make_async_engine(settings: Settings, pre_ping: bool = True) -> AsyncEngine:
    """`pre_ping`: a round trip per checkout, so that a database restart fails no client call.
    The dispatcher goes without (a failed pass is tried again), as does the worker's engine
    (its callers put the message back and try again)."""
    return create_async_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_size,
        pool_pre_ping=pre_ping,
        pool_timeout=settings.db_connect_timeout_seconds,
        connect_args=connection_options(settings),
    )


def make_sync_engine(settings: Settings, pool_size: int = 2) -> sa.Engine:
    return sa.create_engine(
        settings.sqlalchemy_url,
        pool_size=pool_size,
        pool_timeout=settings.db_connect_timeout_seconds,
        connect_args=connection_options(settings),
    )


@contextmanager
def storage_errors(
    errors: tuple[type[BaseException], ...] = CONNECTION_ERRORS,
) -> Iterator[None]:
    """Turns connection failures (or any of `errors`) into StorageUnavailable, which transports
    map to UNAVAILABLE."""
    try:
        yield
    except errors as exc:
        raise StorageUnavailable(f"the task database is unavailable: {type(exc).__name__}") from exc
