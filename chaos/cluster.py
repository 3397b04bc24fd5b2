"""The cluster suite: 2 api processes, 2 gateways, 2 dispatchers and 3 workers, each reaching
PostgreSQL and the broker through a TCP proxy of its own (chaos.proxy), and clients spreading
their calls over both api replicas (gRPC's round_robin). While tasks and a cron schedule firing
every second flow: a worker is cut from PostgreSQL in the middle of a task, a dispatcher is
blackholed, an api replica is killed, the broker is cut from every worker, and an api's link to
PostgreSQL is slowed. Then every acknowledged task must be terminal, none stored twice for one
request, no attempt run twice, no cron fire missed or doubled, and no process may have exited
by itself.

    python -m chaos.cluster [--tasks 1500] [--rate 50] [--broker redis|rabbitmq] [--hold]
                                                                        (make cluster)

Prints a report and writes it to bench/results/cluster.json (cluster-rabbitmq.json with
RabbitMQ); --hold keeps the cluster running
afterwards (its gateways' dashboards, each process's metrics) until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import grpc
import psycopg

from chaos.common import (
    RESULTS,
    FaultReport,
    Supervisor,
    scalar,
    scraped,
    unfinished,
    until_answered,
    wait_until_settled,
)
from chaos.handlers import EXECUTIONS_TABLE
from chaos.proxy import LinkState, Proxies
from taskscheduler.client import CHANNEL_OPTIONS
from taskscheduler.devstack.embedded import free_port, wait_for_port
from taskscheduler.devstack.stack import Broker, Process, Stack, StackConfig, on_free_ports
from taskscheduler.settings import with_driver
from taskscheduler.v1 import schedule_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub

APIS, GATEWAYS, DISPATCHERS, WORKERS = 2, 2, 2, 3
FAULT_KINDS = (
    "worker cut from PostgreSQL mid-task",
    "dispatcher blackholed",
    "api killed",
    "broker cut from every worker",
    "api's link to PostgreSQL slowed",
)


@dataclass
class ClusterConfig:
    tasks: int = 1500
    rate: float = 50.0  # tasks submitted per second
    broker: Broker = Broker.REDIS
    lease_seconds: float = 3.0
    fault_seconds: float = 10.0  # how long each link stays cut or blackholed
    # The task running when its worker is cut off: longer than its lease and re-run.
    long_task_seconds: float = 12.0
    settle_seconds: float = 180.0


@dataclass
class Report(FaultReport):
    fault_kinds: ClassVar[tuple[str, ...]] = FAULT_KINDS
    answered_while_an_api_was_down: int = 0
    # ScheduleTask calls each api replica answered (the killed one's since its restart).
    schedule_calls_by_api: dict[str, int] = field(default_factory=dict)
    cron_fires: int = 0
    cron_fires_missed: int = 0  # seconds between the first and last fire without one
    cron_fires_doubled: int = 0
    cut_task_attempts: list[str] = field(default_factory=list)  # "number status worker"
    cut_task_rerun_elsewhere: bool = False
    cut_worker_late_completion_ignored: bool = False
    cut_worker_handler_end: str = ""  # how and when the cut-off worker's handler ended
    cut_worker_completed_after_link_back: int = 0  # attempts it finished after the link returned

    @property
    def passed(self) -> bool:
        return (
            self.tasks_held
            and self.answered_while_an_api_was_down > 0
            and min(self.schedule_calls_by_api.values()) > 0
            and self.cron_fires > 0
            and self.cron_fires_missed == 0
            and self.cron_fires_doubled == 0
            and self.cut_task_rerun_elsewhere
            and self.cut_worker_late_completion_ignored
            and self.cut_worker_completed_after_link_back > 0
        )


class Cluster(Stack):
    """The stack with replicas: each api, dispatcher and worker process reaches PostgreSQL,
    Redis and RabbitMQ (when it is the broker) through proxies of its own, named
    "<process>/<server>" (worker-2/postgres), which `proxies` cuts, blackholes or slows."""

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config)
        self.proxies = Proxies()
        self.api_ports = [free_port() for _ in range(APIS)]
        self.api_metrics_ports = [free_port() for _ in range(APIS)]
        self.gateway_ports = [free_port() for _ in range(GATEWAYS)]

    @property
    def api_target(self) -> str:
        """Every api replica, as a gRPC target: round_robin spreads calls over them."""
        return "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in self.api_ports)

    def planned_processes(self) -> list[Process]:
        python = sys.executable
        processes = [
            Process(
                f"api-{n}",
                [python, "-m", "services.api"],
                self._links(f"api-{n}")
                | {
                    "TASKSCHED_GRPC_PORT": str(port),
                    "TASKSCHED_API_PROCESSES": "1",
                    "TASKSCHED_API_METRICS_PORT": str(metrics),
                },
            )
            for n, (port, metrics) in enumerate(
                zip(self.api_ports, self.api_metrics_ports, strict=True), 1
            )
        ]
        processes += [
            Process(
                f"gateway-{n}",
                [python, "-m", "gateway"],
                {
                    "TASKSCHED_GATEWAY_PORT": str(port),
                    "TASKSCHED_GATEWAY_PROCESSES": "1",
                    "TASKSCHED_API_ADDRESS": self.api_target,
                },
            )
            for n, port in enumerate(self.gateway_ports, 1)
        ]
        processes += [
            Process(
                f"dispatcher-{n}",
                [python, "-m", "services.dispatcher"],
                self._links(f"dispatcher-{n}")
                | {"TASKSCHED_DISPATCHER_METRICS_PORT": str(free_port())},
            )
            for n in range(1, DISPATCHERS + 1)
        ]
        processes += [
            Process(
                f"worker-{n}",
                self.worker_command(f"worker-{n}@%h"),
                self._links(f"worker-{n}") | {"TASKSCHED_WORKER_METRICS_PORT": str(free_port())},
            )
            for n in range(1, WORKERS + 1)
        ]
        return processes

    def _links(self, process: str) -> dict[str, str]:
        """The process's server addresses, each through a proxy of its own."""
        links = {
            "DATABASE_URL": self._proxied(f"{process}/postgres", self.database_url),
            "REDIS_URL": self._proxied(f"{process}/redis", self.redis_url),
        }
        if self.broker_url:
            links["BROKER_URL"] = self._proxied(f"{process}/rabbitmq", self.broker_url)
        return links

    def _proxied(self, link: str, url: str) -> str:
        parts = urlsplit(url)
        proxy = self.proxies.add(link, parts.hostname or "127.0.0.1", parts.port or 0)
        user = parts.netloc.rpartition("@")[0]
        return urlunsplit(parts._replace(netloc=f"{user}@" * bool(user) + proxy.address))

    def broker_link(self, process: str) -> str:
        return f"{process}/{'rabbitmq' if self.broker_url else 'redis'}"

    def links_of(self, process: str) -> list[str]:
        return [name for name in self.proxies.by_name if name.startswith(f"{process}/")]

    def wait_ready(self, timeout: float = 90) -> None:
        for port in (*self.api_ports, *self.gateway_ports):
            wait_for_port(port, timeout)

    def stop(self, timeout: float = 20) -> None:
        try:
            super().stop(timeout)
        finally:
            self.proxies.close()


class ClusterSuite:
    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.report = Report(broker=config.broker)
        self.acknowledged: set[str] = set()
        self._api_down = threading.Event()
        self._faults_done = threading.Event()
        self._stopping = threading.Event()
        self.long_task = ""  # the task whose worker is cut off in its middle
        self.cut_worker = ""
        self.link_back_at: Any = None  # the database's time when that worker's link returned
        data_dir = Path(tempfile.mkdtemp(prefix="taskscheduler-cluster-"))
        self.log_path = data_dir / "cluster.log"
        self.cluster = Cluster(
            on_free_ports(
                data_dir,
                broker=config.broker,
                extra_env={
                    "TASKSCHED_HANDLER_MODULES": "chaos.handlers",
                    "TASKSCHED_LEASE_SECONDS": str(config.lease_seconds),
                    "TASKSCHED_REPUBLISH_AFTER_SECONDS": "3",
                    "TASKSCHED_REPUBLISH_MAX_SECONDS": "12",
                    "TASKSCHED_STOP_GRACE_SECONDS": "1",
                    "TASKSCHED_DEFAULT_MAX_ATTEMPTS": "20",
                    "TASKSCHED_DEFAULT_INITIAL_BACKOFF_SECONDS": "0.2",
                    "TASKSCHED_DEFAULT_MAX_BACKOFF_SECONDS": "2",
                    "TASKSCHED_DB_CONNECT_TIMEOUT_SECONDS": "2",
                    "TASKSCHED_RATE_LIMIT_RPS": "0",
                },
                log_stream=self.log_path.open("w"),
            )
        )
        self.supervisor = Supervisor(self.cluster, self._fault)
        self.report.unexpected_exits = self.supervisor.unexpected_exits

    # -- the run -----------------------------------------------------------------------------

    def run(self, hold: bool = False) -> Report:
        started = time.monotonic()
        try:
            self.cluster.start()
            self._create_executions_table()
            self.supervisor.start(self._stopping)
            asyncio.run(self._flow())
            wait_until_settled(self._unfinished, self.config.settle_seconds)
            self._measure()
            if hold:
                self._hold()
        finally:
            self._stopping.set()
            self.supervisor.join()
            self.cluster.stop()
        self.report.seconds = round(time.monotonic() - started, 1)
        self.report.log = str(self.log_path)
        return self.report

    @property
    def _database_url(self) -> str:
        return with_driver(self.cluster.database_url, "postgresql")

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._database_url, autocommit=True, connect_timeout=2)

    def _create_executions_table(self) -> None:
        with self._connect() as conn:
            conn.execute(EXECUTIONS_TABLE)

    @property
    def _credentials(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.cluster.token()}"),)

    async def _flow(self) -> None:
        """Tasks at the configured rate, over both api replicas, until every fault is done."""
        async with grpc.aio.insecure_channel(self.cluster.api_target, CHANNEL_OPTIONS) as channel:
            stub = TaskServiceStub(channel)
            schedule = await self._create_every_second_schedule(stub)
            self.long_task = await self._schedule_long_task(stub)
            faults = asyncio.create_task(asyncio.to_thread(self._inject_faults))
            semaphore = asyncio.Semaphore(16)
            pending = []
            index = 0
            while index < self.config.tasks or not self._faults_done.is_set():
                pending.append(asyncio.create_task(self._submit(stub, semaphore, index)))
                index += 1
                await asyncio.sleep(1 / self.config.rate)
            await asyncio.gather(faults, *pending)
            await until_answered(
                stub.PauseSchedule, pb.PauseScheduleRequest(id=schedule), self._credentials
            )

    async def _create_every_second_schedule(self, stub: TaskServiceStub) -> str:
        template = schedule_pb2.TaskTemplate(kind="chaos.work")
        template.payload.update({"max_ms": 10})
        request = pb.CreateScheduleRequest(
            schedule=schedule_pb2.Schedule(
                cron="* * * * * *", task=template, overlap=schedule_pb2.OVERLAP_POLICY_ALLOW
            )
        )
        response = await until_answered(stub.CreateSchedule, request, self._credentials)
        assert response is not None, "the api did not answer"
        return str(response.schedule.id)

    async def _schedule_long_task(self, stub: TaskServiceStub) -> str:
        request = pb.ScheduleTaskRequest(kind="chaos.work", request_id="cluster-long")
        millis = int(self.config.long_task_seconds * 1000)
        request.payload.update({"min_ms": millis, "max_ms": millis})
        self.report.attempted += 1
        response = await until_answered(stub.ScheduleTask, request, self._credentials)
        assert response is not None, "the api did not answer"
        self.acknowledged.add(response.task.id)
        return str(response.task.id)

    async def _submit(
        self, stub: TaskServiceStub, semaphore: asyncio.Semaphore, index: int
    ) -> None:
        async with semaphore:
            request = pb.ScheduleTaskRequest(kind="chaos.work", request_id=f"cluster-{index}")
            request.payload.update({"max_ms": 30})
            self.report.attempted += 1
            response = await until_answered(stub.ScheduleTask, request, self._credentials)
            if response is not None:
                self.acknowledged.add(response.task.id)
                if self._api_down.is_set():
                    self.report.answered_while_an_api_was_down += 1

    # -- faults ------------------------------------------------------------------------------

    def _fault(self, text: str) -> None:
        self.report.faults.append(f"{time.strftime('%H:%M:%S')} {text}")

    def _inject_faults(self) -> None:
        try:
            self._cut_a_worker_mid_task()
            self._blackhole_a_dispatcher()
            self._kill_an_api()
            self._cut_the_broker_from_every_worker()
            self._slow_an_api()
        except Exception as exc:  # the run must still end, and say why a fault is missing
            self._fault(f"fault injection stopped: {exc!r}")
        finally:
            self._faults_done.set()

    @contextlib.contextmanager
    def _links_in(self, links: list[str], state: LinkState, delay: float = 0.0) -> Iterator[None]:
        """The links in `state` for the block, and up again however the block ends."""
        try:
            for link in links:
                self.cluster.proxies.set_state(link, state, delay)
            yield
        finally:
            for link in links:
                self.cluster.proxies.set_state(link, LinkState.UP)

    def _cut_a_worker_mid_task(self) -> None:
        """A long task's worker loses PostgreSQL while running it: its lease expires and
        another worker runs the task again. The link returns while the first still runs it:
        its late renewal and end change nothing."""
        self.cut_worker = self._wait_for_worker_of(self.long_task)
        time.sleep(1)  # well inside the task
        with self._links_in([f"{self.cut_worker}/postgres"], LinkState.CUT):
            self._fault(f"worker cut from PostgreSQL mid-task: {self.cut_worker}")
            self._wait_for_second_attempt(self.long_task)
        self.link_back_at = self._database_now()
        self._fault(f"{self.cut_worker}'s link to PostgreSQL back, the task re-run elsewhere")

    def _wait_for_worker_of(self, task_id: str) -> str:
        """The process name (worker-N) of the worker running the task's first attempt."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with self._connect() as conn:
                row = conn.execute(
                    "SELECT w.celery_hostname FROM tasks t JOIN workers w ON w.name = t.worker "
                    "WHERE t.id = %s AND t.status = 'RUNNING'",
                    (task_id,),
                ).fetchone()
            if row:
                return str(row[0]).split("@")[0]
            time.sleep(0.05)
        raise TimeoutError("the long task did not start")

    def _wait_for_second_attempt(self, task_id: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with self._connect() as conn:
                started = scalar(
                    conn, "SELECT count(*) FROM task_attempts WHERE task_id = %s", (task_id,)
                )
            if started >= 2:
                return
            time.sleep(0.1)
        raise TimeoutError("the task of the cut-off worker did not run again")

    def _database_now(self) -> Any:
        with self._connect() as conn:
            row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        return row[0]

    def _blackhole_a_dispatcher(self) -> None:
        """Every link of one dispatcher forwards nothing: the other carries on alone, cron fires
        included, and the first comes back by itself."""
        with self._links_in(self.cluster.links_of("dispatcher-1"), LinkState.BLACKHOLE):
            self._fault("dispatcher blackholed: dispatcher-1, every link")
            time.sleep(self.config.fault_seconds)
        self._fault("dispatcher-1's links back")

    def _kill_an_api(self) -> None:
        """SIGKILL one api replica and keep it down a while: calls go on through the other."""
        name = "api-1"
        self.supervisor.held.add(name)
        try:
            self.supervisor.expect_exit(name)
            os.kill(self.cluster.pid_of(name), signal.SIGKILL)
            self._api_down.set()
            self._fault(f"api killed: {name} (SIGKILL), down {self.config.fault_seconds:g} s")
            time.sleep(self.config.fault_seconds)
        finally:
            self._api_down.clear()
            self.supervisor.held.discard(name)
        wait_for_port(self.cluster.api_ports[0], timeout=60)
        self._fault(f"{name} back")

    def _cut_the_broker_from_every_worker(self) -> None:
        links = [self.cluster.broker_link(f"worker-{n}") for n in range(1, WORKERS + 1)]
        with self._links_in(links, LinkState.CUT):
            self._fault(f"broker cut from every worker for {self.config.fault_seconds:g} s")
            time.sleep(self.config.fault_seconds)
        self._fault("the workers' links to the broker back")

    def _slow_an_api(self) -> None:
        with self._links_in(["api-2/postgres"], LinkState.SLOW, delay=0.05):
            self._fault("api's link to PostgreSQL slowed: api-2, 50 ms a packet")
            time.sleep(self.config.fault_seconds / 2)

    # -- the figures -------------------------------------------------------------------------

    def _unfinished(self) -> int:
        return unfinished(self._database_url, self.acknowledged)

    def _measure(self) -> None:
        report = self.report
        report.schedule_calls_by_api = {
            f"api-{n}": int(scraped(port, "taskscheduler_grpc_requests_total", "ScheduleTask"))
            for n, port in enumerate(self.cluster.api_metrics_ports, 1)
        }
        report.acknowledged = len(self.acknowledged)
        with self._connect() as conn:
            ids = list(self.acknowledged)
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE status IN ('SUCCESS', 'FAILED', 'CANCELLED')) "
                "FROM tasks WHERE id = ANY(%s::uuid[])",
                (ids,),
            ).fetchone()
            report.lost = report.acknowledged - (int(row[0]) if row else 0)
            report.tasks_stored = scalar(
                conn, "SELECT count(*) FROM tasks WHERE schedule_id IS NULL"
            )
            report.duplicated_executions = scalar(
                conn,
                "SELECT count(*) FROM (SELECT task_id, attempt FROM chaos_executions "
                "GROUP BY 1, 2 HAVING count(*) > 1) AS twice",
            )
            self._measure_cron(conn)
            self._measure_cut_worker(conn)

    def _measure_cron(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT fire_time), "
            "extract(epoch FROM max(fire_time) - min(fire_time)) FROM tasks "
            "WHERE schedule_id IS NOT NULL"
        ).fetchone()
        assert row is not None
        fires, distinct, span = int(row[0]), int(row[1]), float(row[2] or 0)
        self.report.cron_fires = fires
        self.report.cron_fires_doubled = fires - distinct
        self.report.cron_fires_missed = round(span) + 1 - distinct if fires else 0

    def _measure_cut_worker(self, conn: psycopg.Connection[Any]) -> None:
        report = self.report
        if not self.link_back_at:
            return
        attempts = conn.execute(
            "SELECT a.number, a.status, coalesce(a.error_type, ''), w.celery_hostname "
            "FROM task_attempts a LEFT JOIN workers w ON w.name = a.worker "
            "WHERE a.task_id = %s ORDER BY a.number",
            (self.long_task,),
        ).fetchall()
        report.cut_task_attempts = [
            f"{number} {status} {error} {str(host).split('@')[0]}".replace("  ", " ")
            for number, status, error, host in attempts
        ]
        cut = f"{self.cut_worker}@"
        first_lost = bool(attempts) and attempts[0][2] == "taskscheduler.WorkerLost"
        report.cut_task_rerun_elsewhere = first_lost and any(
            status == "SUCCESS" and not str(host).startswith(cut)
            for _, status, _, host in attempts[1:]
        )
        report.cut_worker_late_completion_ignored = first_lost and self._late_end_ignored(conn)
        report.cut_worker_completed_after_link_back = scalar(
            conn,
            "SELECT count(*) FROM task_attempts a JOIN workers w ON w.name = a.worker "
            "WHERE w.celery_hostname LIKE %s AND a.finished_at > %s",
            (f"{cut}%", self.link_back_at),
        )

    def _late_end_ignored(self, conn: psycopg.Connection[Any]) -> bool:
        """The cut-off worker's handler ran on until after its link was back (its watchdog
        then found the lease gone and stopped it), so that worker sent an end; it did not land:
        the first attempt still ended, lost, before the link came back, and the task's result
        is the last attempt's."""
        row = conn.execute(
            "SELECT e.ended_by, extract(epoch FROM e.ended_at - %(back)s),"
            " a.finished_at < %(back)s,"
            " t.status = 'SUCCESS' AND t.attempt > 1 AND t.result->>'attempt' = t.attempt::text"
            " FROM chaos_executions e"
            " JOIN task_attempts a ON a.task_id = e.task_id AND a.number = e.attempt"
            " JOIN tasks t ON t.id = e.task_id"
            " WHERE e.task_id = %(task)s AND e.attempt = 1",
            {"back": self.link_back_at, "task": self.long_task},
        ).fetchone()
        if row is None or row[0] is None:
            self.report.cut_worker_handler_end = "never recorded"
            return False
        ended_by, after_link_back, lost_before, result_of_the_rerun = row
        self.report.cut_worker_handler_end = (
            f"{ended_by}, {float(after_link_back):.1f} s after its link was back"
        )
        return float(after_link_back) > 0 and lost_before and result_of_the_rerun

    def _hold(self) -> None:
        for n, port in enumerate(self.cluster.gateway_ports, 1):
            print(f"gateway-{n}: http://127.0.0.1:{port}/dashboard")
        print(f"token: {self.cluster.token()}")
        print("Ctrl-C stops the cluster")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


def print_report(report: Report) -> None:
    print("cluster suite" + (" PASSED" if report.passed else " FAILED"))
    for name, value in asdict(report).items():
        if name != "faults":
            print(f"  {name:<40} {value}")
    print(f"  {'faults missing from the run':<40} {report.missing_faults}")
    print("  faults:")
    for fault in report.faults:
        print(f"    {fault}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1500)
    parser.add_argument("--rate", type=float, default=50.0, help="tasks submitted per second")
    parser.add_argument("--broker", type=Broker, choices=list(Broker), default=Broker.REDIS)
    parser.add_argument("--hold", action="store_true", help="keep the cluster up afterwards")
    args = parser.parse_args()
    config = ClusterConfig(tasks=args.tasks, rate=args.rate, broker=args.broker)
    report = ClusterSuite(config).run(hold=args.hold)
    print_report(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "cluster.json" if args.broker is Broker.REDIS else f"cluster-{args.broker}.json"
    (RESULTS / name).write_text(json.dumps(asdict(report), indent=2) + "\n")
    raise SystemExit(0 if report.passed else 1)


if __name__ == "__main__":
    main()
