"""Where the time of a run goes: CPU per process of the stack (from /proc, through psutil) and
PostgreSQL's own counters (commits, row writes and HOT updates, index tuples read, WAL bytes),
each as a delta over the run divided by the tasks it carried."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import psutil
import psycopg

from bench.common import Bench, Figure

CPU_GOAL_MS = 3.0
WAL_GOAL_KB = 2.5


def tree_seconds(process: psutil.Process, children: bool) -> float:
    """CPU seconds of a process and, with `children`, of every descendant, living or reaped
    (a reaped child's time is in its parent's children_* counters)."""
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    seconds = times.user + times.system
    if not children:
        return seconds
    seconds += times.children_user + times.children_system
    for child in process.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        seconds += child_times.user + child_times.system
    return seconds


def listener(port: int) -> psutil.Process | None:
    for connection in psutil.net_connections(kind="tcp"):
        address = connection.laddr
        if connection.status == psutil.CONN_LISTEN and address and address.port == port:
            return None if connection.pid is None else psutil.Process(connection.pid)
    return None


def port_of(url: str) -> int:
    return urlsplit(url).port or 0


def stack_processes(bench: Bench) -> dict[str, tuple[psutil.Process, bool]]:
    """Each measured process (or tree) of the stack: name -> (process, with descendants)."""
    stack = bench.stack
    found: dict[str, tuple[psutil.Process, bool]] = {}
    for name in ("api", "gateway", "dispatcher"):
        found[name] = (psutil.Process(stack.pid_of(name)), True)
    worker = psutil.Process(stack.pid_of("worker"))
    found["worker main"] = (worker, False)
    found["worker pool"] = (worker, True)  # minus the main process, below
    servers = [("PostgreSQL", bench.database_url), ("Redis", bench.redis_url)]
    if stack.broker_url:
        servers.append(("RabbitMQ", stack.broker_url))
    for name, url in servers:
        server = listener(port_of(url))
        if server is not None:
            found[name] = (server, True)
    return found


_DATABASE_QUERY = """
SELECT d.xact_commit, d.tup_inserted, d.tup_updated, d.tup_deleted,
       (SELECT coalesce(sum(n_tup_hot_upd), 0) FROM pg_stat_user_tables),
       (SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes),
       pg_current_wal_lsn() - '0/0'::pg_lsn
FROM pg_stat_database d WHERE d.datname = current_database()
"""
_DATABASE_FIELDS = (
    "commits",
    "rows inserted",
    "rows updated",
    "rows deleted",
    "HOT updates",
    "index tuples read",
    "WAL bytes",
)


def _database_counters(url: str) -> dict[str, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute(_DATABASE_QUERY).fetchone()
    assert row is not None
    return dict(zip(_DATABASE_FIELDS, map(float, row), strict=True))


_INDEX_QUERY = "SELECT indexrelname, idx_tup_read FROM pg_stat_user_indexes"


def _index_reads(url: str) -> dict[str, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {name: float(read) for name, read in conn.execute(_INDEX_QUERY).fetchall()}


def _statement_count(url: str) -> float | None:
    """Statements run, from pg_stat_statements where the server loads it."""
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT sum(calls) FROM pg_stat_statements").fetchone()
    except psycopg.Error:
        return None
    return None if row is None or row[0] is None else float(row[0])


@dataclass
class Costs:
    """What a run cost, per task."""

    tasks: int
    cpu_ms: dict[str, float] = field(default_factory=dict)
    database: dict[str, float] = field(default_factory=dict)
    index_reads: dict[str, float] = field(default_factory=dict)
    """Index tuples read per task, by index (those read at least once a task)."""

    @property
    def cpu_total_ms(self) -> float:
        return sum(self.cpu_ms.values())

    def figures(self, label: str) -> list[Figure]:
        """Every measured cost, less those that came to nothing (the gateway when the run goes
        by gRPC, rows deleted when nothing is): a zero (to two decimals) is no figure."""
        figures = [
            Figure(f"{label}: CPU per task, {name}", "ms", value)
            for name, value in self.cpu_ms.items()
            if round(value, 2) > 0
        ]
        figures.append(
            Figure(
                f"{label}: CPU per task, every process",
                "ms",
                self.cpu_total_ms,
                goal=CPU_GOAL_MS,
                goal_is="value<=",
            )
        )
        for name, value in self.database.items():
            if round(value, 2) <= 0:
                continue
            if name == "WAL bytes":
                figures.append(
                    Figure(
                        f"{label}: WAL per task",
                        "kB",
                        value / 1000,
                        goal=WAL_GOAL_KB,
                        goal_is="value<=",
                    )
                )
            else:
                figures.append(Figure(f"{label}: {name} per task", "", value))
        for name, value in self.index_reads.items():
            figures.append(Figure(f"{label}: index tuples read per task, {name}", "", value))
        return figures


@contextmanager
def measured(bench: Bench, tasks: int) -> Iterator[Costs]:
    """Measures the stack's processes and database over the block; the Costs it yields are
    filled in when the block ends."""
    processes = stack_processes(bench)
    costs = Costs(tasks)
    cpu_before = {name: tree_seconds(p, children) for name, (p, children) in processes.items()}
    database_before = _database_counters(bench.database_url)
    indexes_before = _index_reads(bench.database_url)
    statements_before = _statement_count(bench.database_url)
    yield costs
    cpu_after = {name: tree_seconds(p, children) for name, (p, children) in processes.items()}
    database_after = _database_counters(bench.database_url)
    indexes_after = _index_reads(bench.database_url)
    statements_after = _statement_count(bench.database_url)
    spent = {name: cpu_after[name] - cpu_before[name] for name in processes}
    spent["worker pool"] -= spent["worker main"]
    costs.cpu_ms = {name: seconds * 1000 / tasks for name, seconds in spent.items()}
    costs.database = {
        name: (database_after[name] - database_before[name]) / tasks for name in database_after
    }
    read = {
        name: (indexes_after[name] - indexes_before.get(name, 0)) / tasks for name in indexes_after
    }
    costs.index_reads = dict(
        sorted(((n, v) for n, v in read.items() if v >= 1), key=lambda i: -i[1])
    )
    if statements_before is not None and statements_after is not None:
        costs.database["statements"] = (statements_after - statements_before) / tasks
