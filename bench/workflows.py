"""Workflows: a 1,000-step workflow (a fan-out of 999 and its fan-in) beside 1,000 tasks
scheduled flat, and the delay a release adds to a step's start (its last parent's end to its
RUNNING) beside a plain task's accept-to-RUNNING in the same run."""

from __future__ import annotations

import asyncio
import time

from bench import baseline
from bench.common import Bench, Figure, percentile
from bench.throughput import service_throughput
from taskscheduler.core.limits import MAX_WORKFLOW_STEPS
from taskscheduler.v1 import schedule_pb2, workflow_pb2
from taskscheduler.v1 import task_service_pb2 as pb

FAN_TENANT = "bench-fan"
FLAT_TENANT = "bench-flat"
CHAIN_TENANT = "bench-chain"
LOW_LOAD_INTERVAL = 0.05  # seconds between two chains: 20 a second, as throughput's probes


def measure(bench: Bench) -> list[Figure]:
    steps = 100 if bench.quick else MAX_WORKFLOW_STEPS
    chains = 20 if bench.quick else 200
    flat_rate = asyncio.run(service_throughput(bench, steps, FLAT_TENANT))
    fan_seconds = asyncio.run(fan_out_and_in(bench, steps - 1))
    releases = asyncio.run(release_delays(bench, chains))
    starts = start_delays(bench)
    return [
        Figure(
            f"{steps:,}-step workflow, a fan-out and its fan-in: create to the fan-in's end",
            "ms",
            fan_seconds * 1000,
            steps / flat_rate * 1000,
            f"{steps:,} tasks flat, first call to last end",
            goal=1.3,
            goal_is="ratio<=",
        ),
        Figure(
            "a step's release: its parent's end to its RUNNING, p50",
            "ms",
            percentile(releases, 0.5) * 1000,
            percentile(starts, 0.5) * 1000,
            "a task's accept to RUNNING, same load",
        ),
        Figure(
            "a step's release: its parent's end to its RUNNING, p99",
            "ms",
            percentile(releases, 0.99) * 1000,
            percentile(starts, 0.99) * 1000,
            "a task's accept to RUNNING, same load",
            goal=5.0,
            goal_is="value<=",
        ),
    ]


async def fan_out_and_in(bench: Bench, width: int) -> float:
    """Seconds from the CreateWorkflow call to the end of the fan-in step."""
    steps = [_step(f"part-{n}") for n in range(width)]
    steps.append(_step("join", "demo.gather", [step.name for step in steps]))
    started = time.time()
    async with bench.channel() as channel:
        created = await bench.stub(channel).CreateWorkflow(
            pb.CreateWorkflowRequest(name="bench fan", steps=steps),
            metadata=bench.metadata(FAN_TENANT),
            timeout=120,
        )
    bench.wait_until_finished(FAN_TENANT, width + 1)
    with baseline.connect(bench.database_url) as conn:
        row = conn.execute(
            "SELECT finished_at FROM workflows WHERE id = %s", (created.workflow.id,)
        ).fetchone()
    assert row is not None and row[0] is not None
    return float(row[0].timestamp() - started)


async def release_delays(bench: Bench, count: int) -> list[float]:
    """Two-step chains, one every LOW_LOAD_INTERVAL: for each, the seconds from the first
    step's end to the start of the second's first attempt."""
    async with bench.channel() as channel:
        stub = bench.stub(channel)
        for _ in range(count):
            await stub.CreateWorkflow(
                pb.CreateWorkflowRequest(steps=[_step("a"), _step("b", depends_on=["a"])]),
                metadata=bench.metadata(CHAIN_TENANT),
                timeout=30,
            )
            await asyncio.sleep(LOW_LOAD_INTERVAL)
    bench.wait_until_finished(CHAIN_TENANT, 2 * count)
    with baseline.connect(bench.database_url) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM started.started_at - parent.finished_at) "
            "FROM tasks child "
            "JOIN task_dependencies d ON d.task_id = child.id "
            "JOIN tasks parent ON parent.id = d.depends_on "
            "JOIN task_attempts started ON started.task_id = child.id AND started.number = 1 "
            "WHERE child.tenant = %s",
            (CHAIN_TENANT,),
        ).fetchall()
    return [float(delay) for (delay,) in rows]


def start_delays(bench: Bench) -> list[float]:
    """Accept to RUNNING of the chains' first steps (the same load, the same stack)."""
    with baseline.connect(bench.database_url) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM a.started_at - t.created_at) FROM tasks t "
            "JOIN task_attempts a ON a.task_id = t.id AND a.number = 1 "
            "WHERE t.tenant = %s AND NOT EXISTS "
            "(SELECT 1 FROM task_dependencies d WHERE d.task_id = t.id)",
            (CHAIN_TENANT,),
        ).fetchall()
    return [float(delay) for (delay,) in rows]


def _step(
    name: str, kind: str = "demo.echo", depends_on: list[str] | None = None
) -> workflow_pb2.WorkflowStepSpec:
    return workflow_pb2.WorkflowStepSpec(
        name=name, task=schedule_pb2.TaskTemplate(kind=kind), depends_on=depends_on or []
    )
