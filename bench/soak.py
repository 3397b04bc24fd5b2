"""The soak: the stack under a steady mix for hours (short, slow, failing-then-succeeding and
cancelled tasks, cron schedules, status streams), sampled as it goes: each process's memory,
the task tables' and indexes' size, dead tuples, accept-to-start latency and throughput, and
what the retention deletes cost. It fails when memory or latency keeps growing, throughput
falls behind, a call or a sample fails, a process exits, or the stored tasks stop tracking
the retention window.

    python -m bench.soak [--minutes 120] [--rate 20] [--retention-minutes 10]     (make soak)

Writes bench/results/soak.json and soak.png.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
import psycopg

from bench.costs import listener, port_of, tree_seconds
from chaos.common import scalar, scraped
from taskscheduler.client import FINISHED
from taskscheduler.devstack.stack import Stack, on_free_ports
from taskscheduler.settings import with_driver
from taskscheduler.v1 import schedule_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub

RESULTS = Path(__file__).parent / "results"
TENANT = "soak"
CRON_SCHEDULES = 2  # each fires every 10 seconds
MIX = 20  # the kinds of task below, per this many submitted
GROWTH_LIMIT = 1.25  # the last quarter's median against the second quarter's
MEMORY_SLACK_MB = 20.0
LATENCY_SLACK_MS = 50.0
THROUGHPUT_FLOOR = 0.9  # of the submitted rate, finished a second in the last quarter
STREAM_SECONDS = 120.0  # a followed task reaches its end well within this
PROCESSES = ("api", "gateway", "dispatcher", "worker")


@dataclass
class SoakConfig:
    minutes: float = 120.0
    rate: float = 20.0  # tasks submitted per second
    retention_minutes: float = 10.0
    sample_seconds: float = 10.0
    worker_concurrency: int = 4


@dataclass
class Sample:
    minute: float
    rss_mb: dict[str, float]
    tasks_stored: int
    tasks_heap_mb: float
    tasks_indexes_mb: float
    attempts_mb: float
    dead_tuples: dict[str, int]
    autovacuums: dict[str, int]
    finished_per_second: float
    start_p50_ms: float
    start_p95_ms: float
    past_retention: int  # finished tasks older than the retention and a pass's slack
    retention_seconds: float  # spent by the retention deletes so far
    postgres_cpu_seconds: float  # spent by PostgreSQL so far


@dataclass
class Verdict:
    check: str
    passed: bool
    detail: str


@dataclass
class Report:
    config: dict[str, Any]
    samples: list[Sample] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    submitted: int = 0
    streams_followed: int = 0
    failed_calls: list[str] = field(default_factory=list)
    failed_samples: list[str] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)  # processes that stopped by themselves
    summary: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.verdicts) and all(verdict.passed for verdict in self.verdicts)


class Soak:
    def __init__(self, config: SoakConfig) -> None:
        self.config = config
        self.report = Report(config=asdict(config))
        self._stopping = threading.Event()
        data_dir = Path(tempfile.mkdtemp(prefix="taskscheduler-soak-"))
        self.stack = Stack(
            on_free_ports(
                data_dir,
                worker_concurrency=config.worker_concurrency,
                extra_env={
                    "TASKSCHED_RATE_LIMIT_RPS": "0",
                    "TASKSCHED_RETENTION_DAYS": str(config.retention_minutes / 1440),
                },
                log_stream=(data_dir / "stack.log").open("w"),
            )
        )
        self._started = 0.0

    def run(self) -> Report:
        try:
            self.stack.start()
            self._started = time.monotonic()
            sampler = threading.Thread(target=self._sample_until_stopped, daemon=True)
            sampler.start()
            asyncio.run(self._load())
            self._stopping.set()
            sampler.join()
        finally:
            self._stopping.set()
            self.stack.stop()
        self.report.verdicts = judge(self.report, self.config)
        self.report.summary = summarize(self.report.samples)
        return self.report

    # -- the load ----------------------------------------------------------------------------

    async def _load(self) -> None:
        metadata = (("authorization", f"Bearer {self.stack.token(TENANT)}"),)
        address = f"127.0.0.1:{self.stack.config.grpc_port}"
        async with grpc.aio.insecure_channel(address) as channel:
            stub = TaskServiceStub(channel)
            for number in range(CRON_SCHEDULES):
                await _create_schedule(stub, metadata, number)
            pending: set[asyncio.Task[None]] = set()
            deadline = self._started + self.config.minutes * 60
            index = 0
            while time.monotonic() < deadline:
                task = asyncio.create_task(self._submit(stub, metadata, index))
                pending.add(task)
                task.add_done_callback(pending.discard)
                index += 1
                await asyncio.sleep(1 / self.config.rate)
            await asyncio.gather(*pending)

    async def _submit(
        self, stub: TaskServiceStub, metadata: tuple[tuple[str, str], ...], index: int
    ) -> None:
        """One task of the mix: mostly short ones; slow ones; ones that fail once and then
        succeed; ones scheduled ahead and cancelled; ones followed by a status stream."""
        slot = index % MIX
        request = pb.ScheduleTaskRequest(kind="demo.echo")
        if slot in (12, 13):
            request.kind = "demo.sleep"
            request.payload.update({"seconds": 0.5})
        elif slot in (14, 15):
            request.kind = "demo.fail"
            request.payload.update({"fail_times": 1})
            request.retry_policy.initial_backoff.FromSeconds(1)
        elif slot in (16, 17):
            request.run_at.FromSeconds(int(time.time()) + 60)
        try:
            reply = await stub.ScheduleTask(request, metadata=metadata, timeout=10)
            self.report.submitted += 1
            if slot in (16, 17):
                await asyncio.sleep(2)
                await stub.CancelTask(
                    pb.CancelTaskRequest(task_id=reply.task.id), metadata=metadata, timeout=10
                )
            elif slot == 18:
                await self._follow(stub, metadata, reply.task.id)
        except grpc.aio.AioRpcError as error:
            failure = f"{error.code().name} {error.details()}"
            self.report.failed_calls.append(failure)
            print(f"soak: a call failed: {failure}", flush=True)

    async def _follow(
        self, stub: TaskServiceStub, metadata: tuple[tuple[str, str], ...], task_id: str
    ) -> None:
        stream = stub.StreamStatus(
            pb.StreamStatusRequest(task_id=task_id), metadata=metadata, timeout=STREAM_SECONDS
        )
        async for event in stream:
            if event.status in FINISHED:
                break
        stream.cancel()
        self.report.streams_followed += 1

    # -- the samples -------------------------------------------------------------------------

    def _sample_until_stopped(self) -> None:
        database = with_driver(self.stack.database_url, "postgresql")
        postgres = listener(port_of(database))
        while not self._stopping.wait(self.config.sample_seconds):
            self._note_exits()
            try:
                with psycopg.connect(database, autocommit=True) as conn:
                    sample = self._sample(conn, postgres)
            except (psycopg.Error, psutil.Error, httpx.HTTPError) as exc:
                self.report.failed_samples.append(repr(exc))
                print(f"soak: a sample failed: {exc!r}", flush=True)
                continue
            self.report.samples.append(sample)
            print(_progress(sample), flush=True)

    def _note_exits(self) -> None:
        for process in self.stack.exited():
            code = process.popen.returncode if process.popen else None
            exit_ = f"{process.name} exited with code {code}"
            if exit_ not in self.report.exits:
                self.report.exits.append(exit_)

    def _sample(self, conn: psycopg.Connection[Any], postgres: psutil.Process | None) -> Sample:
        interval = self.config.sample_seconds
        finished = scalar(conn, FINISHED_LATELY, (interval,))
        p50, p95 = conn.execute(START_LATENCY, (interval,)).fetchone() or (0, 0)
        sizes = conn.execute(SIZES).fetchone()
        assert sizes is not None
        tables = {
            name: (int(dead), int(vacuums))
            for name, dead, vacuums in conn.execute(TABLE_STATS).fetchall()
        }
        retention = self.config.retention_minutes * 60 + RETENTION_SLACK_SECONDS
        return Sample(
            minute=round((time.monotonic() - self._started) / 60, 2),
            rss_mb=self._memory(),
            tasks_stored=scalar(conn, "SELECT count(*) FROM tasks"),
            tasks_heap_mb=sizes[0] / 2**20,
            tasks_indexes_mb=sizes[1] / 2**20,
            attempts_mb=sizes[2] / 2**20,
            dead_tuples={name: dead for name, (dead, _) in tables.items()},
            autovacuums={name: vacuums for name, (_, vacuums) in tables.items()},
            finished_per_second=round(finished / interval, 2),
            start_p50_ms=float(p50 or 0) * 1000,
            start_p95_ms=float(p95 or 0) * 1000,
            past_retention=scalar(conn, PAST_RETENTION, (retention,)),
            retention_seconds=self._retention_seconds(),
            postgres_cpu_seconds=0.0 if postgres is None else tree_seconds(postgres, True),
        )

    def _memory(self) -> dict[str, float]:
        """Resident memory of each process with its children (the api's and gateway's
        processes, the worker's pool), in MB."""
        memory = {}
        for name in PROCESSES:
            root = psutil.Process(self.stack.pid_of(name))
            tree = [root, *root.children(recursive=True)]
            memory[name] = round(sum(p.memory_info().rss for p in tree) / 2**20, 1)
        return memory

    def _retention_seconds(self) -> float:
        port = self.stack.config.dispatcher_metrics_port
        return scraped(port, "taskscheduler_retention_delete_seconds_sum")


RETENTION_SLACK_SECONDS = 60  # a maintenance pass deletes at most a batch
FINISHED_LATELY = "SELECT count(*) FROM tasks WHERE finished_at > now() - make_interval(secs => %s)"
START_LATENCY = """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.started_at - t.run_at)),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM a.started_at - t.run_at))
FROM task_attempts a JOIN tasks t ON t.id = a.task_id
WHERE a.number = 1 AND a.started_at > now() - make_interval(secs => %s)
"""
SIZES = """
SELECT pg_relation_size('tasks'), pg_indexes_size('tasks'), pg_total_relation_size('task_attempts')
"""
TABLE_STATS = """
SELECT relname, n_dead_tup, autovacuum_count FROM pg_stat_user_tables
WHERE relname IN ('tasks', 'task_attempts')
"""
PAST_RETENTION = """
SELECT count(*) FROM tasks
WHERE finished_at < now() - make_interval(secs => %s)
"""


async def _create_schedule(
    stub: TaskServiceStub, metadata: tuple[tuple[str, str], ...], number: int
) -> None:
    template = schedule_pb2.TaskTemplate(kind="demo.echo")
    template.payload.update({"schedule": number})
    schedule = schedule_pb2.Schedule(cron="*/10 * * * * *", task=template)
    await stub.CreateSchedule(pb.CreateScheduleRequest(schedule=schedule), metadata=metadata)


def _progress(sample: Sample) -> str:
    memory = " ".join(f"{name} {mb:.0f}" for name, mb in sample.rss_mb.items())
    return (
        f"{sample.minute:7.1f} min  {sample.finished_per_second:6.1f} tasks/s  "
        f"start p95 {sample.start_p95_ms:6.1f} ms  stored {sample.tasks_stored:7,}  "
        f"dead {sum(sample.dead_tuples.values()):6,}  MB: {memory}"
    )


# -- the verdicts --------------------------------------------------------------------------


def judge(report: Report, config: SoakConfig) -> list[Verdict]:
    """The second quarter of the run (warmed up) against the last: memory and latency may not
    grow beyond GROWTH_LIMIT (and a small slack), throughput may not fall behind the rate; the
    stored tasks must stay near what the retention window holds, with none left long past it;
    and every call, sample and process must have held throughout."""
    samples = report.samples
    if len(samples) < 8:
        return [Verdict("enough samples", False, f"{len(samples)} samples; 8 needed")]
    quarter = len(samples) // 4
    settled, last = samples[quarter : 2 * quarter], samples[-quarter:]
    verdicts = [_memory_verdict(name, settled, last) for name in PROCESSES]
    before = statistics.median(s.start_p95_ms for s in settled)
    after = statistics.median(s.start_p95_ms for s in last)
    verdicts.append(
        Verdict(
            "accept-to-start p95",
            after <= before * GROWTH_LIMIT + LATENCY_SLACK_MS,
            f"{before:.0f} ms, then {after:.0f} ms",
        )
    )
    finishing = statistics.median(s.finished_per_second for s in last)
    verdicts.append(
        Verdict(
            "throughput keeps up",
            finishing >= THROUGHPUT_FLOOR * config.rate,
            f"{finishing:.1f} tasks/s finished in the last quarter, {config.rate:g} submitted",
        )
    )
    window = config.rate * (config.retention_minutes * 60 + RETENTION_SLACK_SECONDS)
    most = max(s.tasks_stored for s in last)
    verdicts.append(
        Verdict(
            "stored tasks track the retention window",
            most <= 1.5 * window + 1000 and max(s.past_retention for s in last) == 0,
            f"at most {most:,} stored in the last quarter (the window holds about "
            f"{window:,.0f}); {max(s.past_retention for s in last)} past it",
        )
    )
    for check, failures in (
        ("every call answered", report.failed_calls),
        ("every sample taken", report.failed_samples),
        ("no process exited by itself", report.exits),
    ):
        verdicts.append(Verdict(check, not failures, f"{len(failures)}: {failures[:3]}"))
    return verdicts


def _memory_verdict(name: str, settled: list[Sample], last: list[Sample]) -> Verdict:
    before = statistics.median(s.rss_mb[name] for s in settled)
    after = statistics.median(s.rss_mb[name] for s in last)
    limit = before * GROWTH_LIMIT + MEMORY_SLACK_MB
    return Verdict(f"{name} memory", after <= limit, f"{before:.0f} MB, then {after:.0f} MB")


def summarize(samples: list[Sample]) -> dict[str, float]:
    """What the run's end shows: bytes stored per task (heap, indexes, attempts), and the
    share of PostgreSQL's CPU time that the retention deletes took."""
    if len(samples) < 2:
        return {}
    first, last = samples[0], samples[-1]
    stored = max(1, last.tasks_stored)
    postgres = last.postgres_cpu_seconds - first.postgres_cpu_seconds
    retention = last.retention_seconds - first.retention_seconds
    return {
        "tasks_heap_bytes_per_task": round(last.tasks_heap_mb * 2**20 / stored),
        "tasks_index_bytes_per_task": round(last.tasks_indexes_mb * 2**20 / stored),
        "attempts_bytes_per_task": round(last.attempts_mb * 2**20 / stored),
        "postgres_cpu_seconds": round(postgres, 1),
        "retention_delete_seconds": round(retention, 2),
        "retention_share_of_postgres_cpu": round(retention / postgres, 4) if postgres else 0.0,
        "autovacuums_tasks": last.autovacuums.get("tasks", 0),
        "autovacuums_task_attempts": last.autovacuums.get("task_attempts", 0),
    }


# -- the plot ------------------------------------------------------------------------------


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report.samples
    minutes = [s.minute for s in samples]
    figure, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    panels: list[tuple[str, dict[str, list[float]]]] = [
        ("resident memory (MB)", {n: [s.rss_mb[n] for s in samples] for n in PROCESSES}),
        (
            "tasks table and indexes (MB)",
            {
                "tasks heap": [s.tasks_heap_mb for s in samples],
                "tasks indexes": [s.tasks_indexes_mb for s in samples],
                "task_attempts": [s.attempts_mb for s in samples],
            },
        ),
        (
            "dead tuples",
            {
                name: [float(s.dead_tuples.get(name, 0)) for s in samples]
                for name in ("tasks", "task_attempts")
            },
        ),
        (
            "accept to start (ms)",
            {"p50": [s.start_p50_ms for s in samples], "p95": [s.start_p95_ms for s in samples]},
        ),
        ("tasks finished per second", {"finished": [s.finished_per_second for s in samples]}),
        ("tasks stored", {"stored": [float(s.tasks_stored) for s in samples]}),
    ]
    for axis, (title, lines) in zip(axes.flat, panels, strict=True):
        for label, values in lines.items():
            axis.plot(minutes, values, label=label)
        axis.set_title(title)
        axis.set_xlabel("minutes")
        axis.legend(fontsize="small")
        axis.grid(alpha=0.3)
    verdict = "PASSED" if report.passed else "FAILED"
    figure.suptitle(
        f"soak: {report.config['minutes']:g} min at {report.config['rate']:g} tasks/s, "
        f"retention {report.config['retention_minutes']:g} min: {verdict}"
    )
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    path.write_bytes(buffer.getvalue())
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--rate", type=float, default=20.0, help="tasks submitted per second")
    parser.add_argument("--retention-minutes", type=float, default=10.0)
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    config = SoakConfig(
        minutes=args.minutes,
        rate=args.rate,
        retention_minutes=args.retention_minutes,
        sample_seconds=args.sample_seconds,
    )
    report = Soak(config).run()
    args.out.mkdir(parents=True, exist_ok=True)
    document = asdict(report) | {"passed": report.passed}
    (args.out / "soak.json").write_text(json.dumps(document, indent=2) + "\n")
    plot(report, args.out / "soak.png")
    for name, value in report.summary.items():
        print(f"     {name}: {value}")
    for verdict in report.verdicts:
        print(f"{'ok  ' if verdict.passed else 'FAIL'} {verdict.check}: {verdict.detail}")
    print(f"soak {'PASSED' if report.passed else 'FAILED'}; written to {args.out}")
    raise SystemExit(0 if report.passed else 1)


if __name__ == "__main__":
    main()
