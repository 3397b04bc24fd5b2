"""The peers' no-op task, as their workers import it: a procrastinate app and a pgqueuer factory,
both on the database that BENCH_PEER_DATABASE_URL names (set by bench.peers).

    procrastinate --app bench.peer_tasks.app worker --concurrency 2
    python -m bench.peer_tasks --batch-size 1      (`pgq run`, through pgqueuer's API)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pgqueuer
import procrastinate
import uvloop
from pgqueuer import PgQueuer
from pgqueuer.core import logconfig
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job

DATABASE_URL_VARIABLE = "BENCH_PEER_DATABASE_URL"
TASK = "bench_noop"


async def noop() -> None:
    """Does nothing: what is measured is the queue's own work around a task."""


async def noop_job(job: Job) -> None:
    """The same no-op, in the signature of a pgqueuer entrypoint."""


def procrastinate_app(database_url: str) -> procrastinate.App:
    """An app with the no-op task; the bench process makes one of its own to enqueue and to
    apply the schema, with the same task name as the worker's."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=database_url))
    app.task(name=TASK)(noop)
    return app


# Read at import, as the worker's CLI loads the app by its dotted path; empty in the bench
# process, which never opens this one.
app = procrastinate_app(os.environ.get(DATABASE_URL_VARIABLE, ""))


@asynccontextmanager
async def pgqueuer_worker() -> AsyncIterator[PgQueuer]:
    """The factory `pgq run` calls: one asyncpg connection, as in pgqueuer's own examples."""
    connection = await asyncpg.connect(os.environ[DATABASE_URL_VARIABLE])
    try:
        pgq = PgQueuer(AsyncpgDriver(connection))
        pgq.entrypoint(TASK)(noop_job)
        yield pgq
    finally:
        await connection.close()


def run_pgqueuer_worker(batch_size: int) -> None:
    """What `pgq run bench.peer_tasks:pgqueuer_worker --batch-size N` does (its logging, its
    uvloop, pgqueuer.run), through pgqueuer's API: the CLI of pgqueuer 1.6.0 fails at start
    under typer 0.29, its --log-level arriving as a str ('str' object has no attribute 'name')."""
    logconfig.setup_fancy_logger(logconfig.LogLevel.INFO)
    uvloop.run(pgqueuer.run(pgqueuer_worker, batch_size=batch_size))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A pgqueuer worker running the no-op task.")
    parser.add_argument("--batch-size", type=int, required=True, help="jobs dequeued at once")
    run_pgqueuer_worker(parser.parse_args().batch_size)
