"""The fault suite: while a few thousand short tasks and a few dozen workflows (diamonds, 50-way
fan-outs with their fan-in, steps that spawn children) flow through the real stack, worker pool
processes are SIGKILLed again and again, the worker's main process is killed and restarted,
the broker (Redis, or RabbitMQ with --broker rabbitmq) is restarted empty, a dispatcher exits
between commit and publish (fault injection) and is restarted, the api is killed amid calls,
PostgreSQL is stopped and started, and it crashes twice (an immediate shutdown, no checkpoint:
crash recovery at the next start). Then every
accepted task and workflow must reach a terminal state, no request may have made two tasks, no
attempt may have run twice, and no step may have started before its dependencies succeeded.

    python -m chaos.suite [--tasks 3000] [--rate 100] [--broker redis|rabbitmq]   (make chaos)

Prints a report (attempted, acknowledged, lost, duplicated, recovered, longest recovery) and
writes it to bench/results/chaos.json (chaos-rabbitmq.json with RabbitMQ).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import grpc
import psutil
import psycopg

from chaos.common import (
    RESULTS,
    FaultReport,
    Supervisor,
    scalar,
    scalar_float,
    unfinished,
    until_answered,
    wait_until_settled,
)
from chaos.handlers import EXECUTIONS_TABLE
from taskscheduler.devstack.stack import Broker, Stack, on_free_ports
from taskscheduler.settings import with_driver
from taskscheduler.v1 import schedule_pb2, workflow_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub

SPAWNED_PARTS = 5  # children of each chaos.spawn step (and one fan-in)
CRASHES = 2  # PostgreSQL crashes (immediate shutdowns) in a run
FAULT_KINDS = (
    "SIGKILL worker pool process",
    "SIGKILL worker main process",
    "broker restarted empty",
    "dispatcher exited with code 70",
    "SIGKILL api",
    "PostgreSQL stopped",
    "PostgreSQL crashed",
)


@dataclass
class ChaosConfig:
    tasks: int = 3000
    rate: float = 100.0  # tasks submitted per second
    pool_kills: int = 6
    postgres_down_seconds: float = 3.0
    lease_seconds: float = 3.0
    republish_after_seconds: float = 3.0
    settle_seconds: float = 180.0  # how long the tasks may take to finish once faults stop
    workflow_every: int = 60  # one workflow submitted with every this many tasks
    broker: Broker = Broker.REDIS


@dataclass
class Report(FaultReport):
    fault_kinds: ClassVar[tuple[str, ...]] = FAULT_KINDS
    terminal: dict[str, int] = field(default_factory=dict)
    workflows_attempted: int = 0
    workflows_acknowledged: int = 0
    workflows_lost: int = 0  # acknowledged, not terminal
    workflows_stored: int = 0
    workflows_terminal: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    steps_spawned: int = 0
    steps_started_early: int = 0  # before a dependency's success, or after it failed
    spawned_twice: int = 0  # workflows with more spawned steps than one success makes
    re_executed_attempts: int = 0
    recovered_from_lost_workers: int = 0
    published_again: int = 0
    longest_recovery_seconds: float = 0.0
    longest_lost_worker_detection_seconds: float = 0.0
    longest_lost_attempt_to_rerun_seconds: float = 0.0
    unfinished_at_faults: list[int] = field(default_factory=list)
    crash_recoveries: int = 0  # starts of PostgreSQL that replayed the WAL after a crash

    @property
    def passed(self) -> bool:
        return (
            self.tasks_held
            and self.workflows_lost == 0
            and self.workflows_stored == self.workflows_attempted
            and self.workflows_acknowledged == self.workflows_attempted > 0
            and self.steps_started_early == 0
            and self.spawned_twice == 0
            and self.crash_recoveries >= CRASHES
        )


class Chaos:
    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        self.report = Report(broker=config.broker)
        self.acknowledged: set[str] = set()
        self.workflows: set[str] = set()
        self._faults_done = threading.Event()
        self._stopping = threading.Event()
        data_dir = Path(tempfile.mkdtemp(prefix="taskscheduler-chaos-"))
        self.log_path = data_dir / "stack.log"
        self.crash_trigger = data_dir / "crash-dispatcher"
        stack_config = on_free_ports(
            data_dir,
            broker=config.broker,
            extra_env={
                "TASKSCHED_HANDLER_MODULES": "chaos.handlers",
                "TASKSCHED_LEASE_SECONDS": str(config.lease_seconds),
                "TASKSCHED_REPUBLISH_AFTER_SECONDS": str(config.republish_after_seconds),
                "TASKSCHED_REPUBLISH_MAX_SECONDS": str(4 * config.republish_after_seconds),
                "TASKSCHED_STOP_GRACE_SECONDS": "1",
                "TASKSCHED_DEFAULT_MAX_ATTEMPTS": "20",
                "TASKSCHED_DEFAULT_INITIAL_BACKOFF_SECONDS": "0.2",
                "TASKSCHED_DEFAULT_MAX_BACKOFF_SECONDS": "2",
                "TASKSCHED_FAULT_CRASH_BEFORE_PUBLISH_FILE": str(self.crash_trigger),
                "TASKSCHED_DB_CONNECT_TIMEOUT_SECONDS": "2",
                "TASKSCHED_RATE_LIMIT_RPS": "0",
            },
            log_stream=self.log_path.open("w"),
        )
        self.stack = Stack(stack_config)
        self.supervisor = Supervisor(self.stack, self._fault)
        self.report.unexpected_exits = self.supervisor.unexpected_exits

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> Report:
        started = time.monotonic()
        try:
            self.stack.start()
            self._create_executions_table()
            self.supervisor.start(self._stopping)
            faults = threading.Thread(target=self._inject_faults, daemon=True)
            faults.start()
            asyncio.run(self._submit_all())
            faults.join()
            wait_until_settled(self._unfinished, self.config.settle_seconds)
            self._stopping.set()
            self._measure()
        finally:
            self._stopping.set()
            self.supervisor.join()
            self.stack.stop()
        self.report.seconds = round(time.monotonic() - started, 1)
        self.report.log = str(self.log_path)
        return self.report

    @property
    def _database_url(self) -> str:
        return with_driver(self.stack.database_url, "postgresql")

    def _create_executions_table(self) -> None:
        with psycopg.connect(self._database_url, autocommit=True) as conn:
            conn.execute(EXECUTIONS_TABLE)

    async def _submit_all(self) -> None:
        address = f"127.0.0.1:{self.stack.config.grpc_port}"
        credentials = (("authorization", f"Bearer {self.stack.token()}"),)
        async with grpc.aio.insecure_channel(address) as channel:
            stub = TaskServiceStub(channel)
            semaphore = asyncio.Semaphore(16)
            interval = 1 / self.config.rate

            async def submit(index: int) -> None:
                async with semaphore:
                    await self._submit_one(stub, credentials, index)
                    if index % self.config.workflow_every == 0:
                        await self._submit_workflow(stub, credentials, index)

            # Tasks keep flowing until every fault is done, so that each one hits work in flight.
            pending = []
            index = 0
            while index < self.config.tasks or not self._faults_done.is_set():
                pending.append(asyncio.create_task(submit(index)))
                index += 1
                await asyncio.sleep(interval)
            await asyncio.gather(*pending)

    async def _submit_one(
        self, stub: TaskServiceStub, credentials: tuple[tuple[str, str], ...], index: int
    ) -> None:
        """Schedules one task, retrying through outages with the same idempotency key."""
        request = pb.ScheduleTaskRequest(kind="chaos.work", request_id=f"chaos-{index}")
        # Mostly short tasks; every 25th runs long enough to be caught by a kill.
        request.payload.update({"max_ms": 400 if index % 25 == 0 else 30})
        self.report.attempted += 1
        response = await until_answered(stub.ScheduleTask, request, credentials)
        if response is not None:
            self.acknowledged.add(response.task.id)

    async def _submit_workflow(
        self, stub: TaskServiceStub, credentials: tuple[tuple[str, str], ...], index: int
    ) -> None:
        """Creates a workflow (a diamond, a 50-way fan-out and fan-in, or a step spawning
        children, in turn), retrying through outages with the same idempotency key."""
        request = pb.CreateWorkflowRequest(
            name=f"chaos-{index}", steps=_workflow_steps(index // self.config.workflow_every)
        )
        request.request_id = f"chaos-workflow-{index}"
        self.report.workflows_attempted += 1
        response = await until_answered(stub.CreateWorkflow, request, credentials)
        if response is not None:
            self.workflows.add(response.workflow.id)

    # -- faults ------------------------------------------------------------------------------

    def _fault(self, text: str) -> None:
        self.report.faults.append(f"{time.strftime('%H:%M:%S')} {text}")

    def _inject_faults(self) -> None:
        self._wait_for_pool()
        duration = self.config.tasks / self.config.rate
        faults = [
            *[self._kill_a_pool_process] * (self.config.pool_kills // 2),
            self._restart_worker,
            self._crash_postgres,  # the first of CRASHES
            self._restart_broker_empty,
            self._crash_dispatcher,
            self._restart_api,
            *[self._kill_a_pool_process] * (self.config.pool_kills - self.config.pool_kills // 2),
            self._crash_postgres,
            self._stop_and_start_postgres,
        ]
        step = duration / len(faults)
        try:
            for fault in faults:
                time.sleep(step)
                self.report.unfinished_at_faults.append(self._unfinished())
                fault()
        except Exception as exc:  # the run must still end, and say why a fault is missing
            self._fault(f"fault injection stopped: {exc!r}")
        finally:
            self._faults_done.set()

    def _wait_for_pool(self) -> None:
        """Faults start once the worker has its pool processes (it cannot survive losing them
        while it starts)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self._pool_processes():
            time.sleep(0.1)
        time.sleep(1)

    def _pool_processes(self) -> list[psutil.Process]:
        try:
            children = psutil.Process(self.stack.pid_of("worker")).children()
            return [child for child in children if child.status() != psutil.STATUS_ZOMBIE]
        except psutil.NoSuchProcess:
            return []

    def _kill_a_pool_process(self) -> None:
        """SIGKILL a pool process, preferably one that is running a task right now."""
        children = {child.pid for child in self._pool_processes()}
        busy = self._pids_running_tasks() & children
        if not children:
            return
        victim = random.choice(sorted(busy or children))
        os.kill(victim, signal.SIGKILL)
        self._fault(f"SIGKILL worker pool process {victim}" + (" (busy)" if busy else ""))

    def _pids_running_tasks(self) -> set[int]:
        try:
            with psycopg.connect(self._database_url, autocommit=True, connect_timeout=2) as conn:
                rows = conn.execute("SELECT worker FROM tasks WHERE status = 'RUNNING'").fetchall()
        except psycopg.OperationalError:
            return set()
        return {int(str(worker).rsplit(":", 1)[1]) for (worker,) in rows if worker}

    def _restart_worker(self) -> None:
        """SIGKILL the worker's main process; the supervisor starts it again."""
        main = self.stack.pid_of("worker")
        self.supervisor.expect_exit("worker")
        os.kill(main, signal.SIGKILL)
        self._fault(f"SIGKILL worker main process {main}")
        time.sleep(1)
        self._wait_for_pool()

    def _crash_dispatcher(self) -> None:
        """The dispatcher exits between its next commit and publish; the supervisor restarts
        it, and the repair loop publishes what it had committed."""
        self.supervisor.expect_exit("dispatcher")
        self.crash_trigger.touch()
        deadline = time.monotonic() + 30
        while self.crash_trigger.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.crash_trigger.exists():  # nothing to publish for 30 s: no crash, none owed
            self.crash_trigger.unlink(missing_ok=True)
            self.supervisor.forget_exit("dispatcher")

    def _restart_api(self) -> None:
        """SIGKILL the api amid ScheduleTask calls: a call whose commit landed but whose answer
        was lost is sent again with its idempotency key and gets the same task."""
        api = self.stack.pid_of("api")
        self.supervisor.expect_exit("api")
        os.kill(api, signal.SIGKILL)
        self._fault(f"SIGKILL api {api}")

    def _restart_broker_empty(self) -> None:
        broker = self.stack.rabbitmq or self.stack.redis
        assert broker is not None
        broker.restart_empty()
        self._fault(f"broker restarted empty ({self.config.broker})")

    def _stop_and_start_postgres(self) -> None:
        assert self.stack.postgres is not None
        self.stack.postgres.stop()
        self._fault("PostgreSQL stopped")
        time.sleep(self.config.postgres_down_seconds)
        self.stack.postgres.start()
        self._fault("PostgreSQL started")

    def _crash_postgres(self) -> None:
        """PostgreSQL killed as a power cut leaves it (no checkpoint) while tasks are accepted
        and completed, then started: it replays its WAL, and what it acknowledged is there."""
        assert self.stack.postgres is not None
        self.stack.postgres.crash()
        self._fault("PostgreSQL crashed (immediate shutdown, no checkpoint)")
        time.sleep(self.config.postgres_down_seconds / 3)
        self.stack.postgres.start()
        self.report.crash_recoveries = self.stack.postgres.recoveries()
        self._fault(f"PostgreSQL started: crash recovery {self.report.crash_recoveries}")

    # -- the figures -------------------------------------------------------------------------

    def _unfinished(self) -> int:
        return unfinished(self._database_url, self.acknowledged, self.workflows)

    def _measure_workflows(self, conn: psycopg.Connection[Any]) -> None:
        report = self.report
        report.workflows_acknowledged = len(self.workflows)
        ids = list(self.workflows)
        rows = conn.execute(
            "SELECT status, count(*) FROM workflows WHERE id = ANY(%s::uuid[]) GROUP BY status",
            (ids,),
        ).fetchall()
        report.workflows_terminal = {str(status): int(count) for status, count in rows}
        report.workflows_lost = report.workflows_acknowledged - sum(
            count for status, count in report.workflows_terminal.items() if status != "RUNNING"
        )
        report.workflows_stored = scalar(conn, "SELECT count(*) FROM workflows")
        report.steps = scalar(conn, "SELECT count(*) FROM tasks WHERE workflow_id IS NOT NULL")
        report.steps_spawned = scalar(
            conn, "SELECT count(*) FROM tasks WHERE step_name LIKE 'spawner/%'"
        )
        # A step whose first attempt started before a dependency's success was committed
        # (or at all, when the dependency did not succeed).
        report.steps_started_early = scalar(
            conn,
            "SELECT count(*) FROM task_dependencies d "
            "JOIN tasks parent ON parent.id = d.depends_on "
            "JOIN task_attempts child ON child.task_id = d.task_id AND child.number = 1 "
            "WHERE parent.status <> 'SUCCESS' OR child.started_at < parent.finished_at",
        )

        report.spawned_twice = scalar(
            conn,
            "SELECT count(*) FROM (SELECT workflow_id FROM tasks WHERE step_name LIKE 'spawner/%' "
            f"GROUP BY workflow_id HAVING count(*) > {SPAWNED_PARTS + 1}) AS twice",
        )

    def _measure(self) -> None:
        report = self.report
        report.acknowledged = len(self.acknowledged)
        with psycopg.connect(self._database_url, autocommit=True) as conn:
            ids = list(self.acknowledged)
            rows = conn.execute(
                "SELECT status, count(*) FROM tasks WHERE id = ANY(%s::uuid[]) GROUP BY status",
                (ids,),
            ).fetchall()
            report.terminal = {str(status): int(count) for status, count in rows}
            terminal = sum(
                count
                for status, count in report.terminal.items()
                if status in ("SUCCESS", "FAILED", "CANCELLED")
            )
            report.lost = report.acknowledged - terminal
            # Calls retried after the api died must not have made a second task.
            report.tasks_stored = scalar(
                conn, "SELECT count(*) FROM tasks WHERE workflow_id IS NULL"
            )
            self._measure_workflows(conn)
            report.duplicated_executions = scalar(
                conn,
                "SELECT count(*) FROM (SELECT task_id, attempt FROM chaos_executions "
                "GROUP BY 1, 2 HAVING count(*) > 1) AS twice",
            )
            report.re_executed_attempts = scalar(
                conn, "SELECT count(*) FROM task_attempts WHERE number > 1"
            )
            report.recovered_from_lost_workers = scalar(
                conn,
                "SELECT count(DISTINCT task_id) FROM task_attempts "
                "WHERE error_type = 'taskscheduler.WorkerLost'",
            )
            report.published_again = scalar(
                conn, "SELECT count(*) FROM tasks WHERE publish_count > 0"
            )
            # From the start of an attempt lost with its worker, or from the acceptance of a
            # task whose message had to be published again, to the task's end.
            recovery = conn.execute(
                """
                SELECT max(extract(epoch FROM t.finished_at - coalesce(
                    (SELECT min(a.started_at) FROM task_attempts a
                     WHERE a.task_id = t.id AND a.error_type = 'taskscheduler.WorkerLost'),
                    t.created_at)))
                FROM tasks t
                WHERE t.finished_at IS NOT NULL AND (t.publish_count > 0 OR EXISTS (
                    SELECT 1 FROM task_attempts a
                    WHERE a.task_id = t.id AND a.error_type = 'taskscheduler.WorkerLost'))
                """
            ).fetchone()
            # A lost worker's attempt is found once its lease expires, not after Redis's
            # visibility timeout (an hour by default); its re-run also waits for the backoff
            # and behind the queue's backlog.
            detection = scalar_float(
                conn,
                "SELECT max(extract(epoch FROM finished_at - started_at)) FROM task_attempts "
                "WHERE error_type = 'taskscheduler.WorkerLost'",
            )
            rerun = scalar_float(
                conn,
                "SELECT max(extract(epoch FROM n.started_at - a.started_at)) "
                "FROM task_attempts a JOIN task_attempts n "
                "ON n.task_id = a.task_id AND n.number = a.number + 1 "
                "WHERE a.error_type = 'taskscheduler.WorkerLost'",
            )
        longest = recovery[0] if recovery else None
        report.longest_recovery_seconds = round(float(longest or 0), 2)
        report.longest_lost_worker_detection_seconds = round(detection, 2)
        report.longest_lost_attempt_to_rerun_seconds = round(rerun, 2)


def _workflow_steps(number: int) -> list[workflow_pb2.WorkflowStepSpec]:
    """The steps of the suite's `number`th workflow: a diamond, a fan-out of 50 and its
    fan-in, or a step that spawns five children and their fan-in, in turn."""
    shape = number % 3
    if shape == 0:
        return [
            _step("top"),
            _step("left", ["top"]),
            _step("right", ["top"]),
            _step("bottom", ["left", "right"]),
        ]
    if shape == 1:
        parts = [_step(f"part-{n}") for n in range(50)]
        return [*parts, _step("join", [part.name for part in parts])]
    spawner = schedule_pb2.TaskTemplate(kind="chaos.spawn")
    spawner.payload.update({"parts": SPAWNED_PARTS})
    return [
        workflow_pb2.WorkflowStepSpec(name="spawner", task=spawner),
        _step("after", ["spawner"]),
    ]


def _step(name: str, depends_on: list[str] | None = None) -> workflow_pb2.WorkflowStepSpec:
    task = schedule_pb2.TaskTemplate(kind="chaos.work")
    task.payload.update({"max_ms": 30})
    return workflow_pb2.WorkflowStepSpec(name=name, task=task, depends_on=depends_on or [])


def print_report(report: Report) -> None:
    print("fault suite" + (" PASSED" if report.passed else " FAILED"))
    for name, value in (
        ("broker", report.broker),
        ("tasks attempted", report.attempted),
        ("tasks acknowledged", report.acknowledged),
        ("lost (acknowledged, not terminal)", report.lost),
        ("tasks stored (one per attempted request)", report.tasks_stored),
        ("terminal by status", report.terminal),
        ("workflows attempted", report.workflows_attempted),
        ("workflows acknowledged", report.workflows_acknowledged),
        ("workflows lost (acknowledged, not terminal)", report.workflows_lost),
        ("workflows stored (one per attempted request)", report.workflows_stored),
        ("workflows by status", report.workflows_terminal),
        ("steps (spawned ones included)", report.steps),
        ("steps spawned at run time", report.steps_spawned),
        ("steps started before a dependency succeeded", report.steps_started_early),
        ("workflows whose steps were spawned twice", report.spawned_twice),
        ("duplicated executions (an attempt run twice)", report.duplicated_executions),
        ("attempts re-run after a fault or failure", report.re_executed_attempts),
        ("tasks recovered from a lost worker (lease expired)", report.recovered_from_lost_workers),
        ("tasks published again by the repair loop", report.published_again),
        ("longest recovery (s)", report.longest_recovery_seconds),
        (
            "longest from a lost attempt's start to its loss recorded (s)",
            report.longest_lost_worker_detection_seconds,
        ),
        (
            "longest from a lost attempt to its re-run (s)",
            report.longest_lost_attempt_to_rerun_seconds,
        ),
        ("unfinished tasks when each fault began", report.unfinished_at_faults),
        ("faults missing from the run", report.missing_faults),
        ("exits the suite did not cause", report.unexpected_exits),
        ("PostgreSQL starts that ran crash recovery", report.crash_recoveries),
        ("run time (s)", report.seconds),
        ("logs of every process", report.log),
    ):
        print(f"  {name:<48} {value}")
    print("  faults:")
    for fault in report.faults:
        print(f"    {fault}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=100.0, help="tasks submitted per second")
    parser.add_argument("--broker", type=Broker, choices=list(Broker), default=Broker.REDIS)
    args = parser.parse_args()
    report = Chaos(ChaosConfig(tasks=args.tasks, rate=args.rate, broker=args.broker)).run()
    print_report(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "chaos.json" if args.broker is Broker.REDIS else f"chaos-{args.broker}.json"
    (RESULTS / name).write_text(json.dumps(asdict(report), indent=2) + "\n")
    raise SystemExit(0 if report.passed else 1)


if __name__ == "__main__":
    main()
