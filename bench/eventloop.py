"""uvloop against asyncio under the api: the durable accept rate with the api restarted on each
loop in turn (alternating, so that both see the machine's slow spells alike)."""

from __future__ import annotations

import asyncio
import statistics

from bench.accept import CLIENTS, grpc_accept_rate
from bench.common import Bench, Figure
from taskscheduler.devstack.embedded import wait_for_port

LOOPS = ("asyncio", "uvloop")


def measure(bench: Bench) -> list[Figure]:
    rounds = 1 if bench.quick else 3
    count = 200 if bench.quick else 2000
    rates: dict[str, list[float]] = {loop: [] for loop in LOOPS}
    with bench.workers_paused():
        for _ in range(rounds):
            for loop in LOOPS:
                restart_api(bench, loop)
                rates[loop].append(asyncio.run(grpc_accept_rate(bench, count)))
        restart_api(bench, "asyncio")
    uvloop, default = (statistics.median(rates[loop]) for loop in ("uvloop", "asyncio"))
    rounds_text = ", ".join(
        f"{a:.0f} vs {u:.0f}" for a, u in zip(rates["asyncio"], rates["uvloop"], strict=True)
    )
    return [
        Figure(
            f"ScheduleTask, {CLIENTS} clients, api on uvloop",
            "tasks/s",
            uvloop,
            default,
            "api on asyncio",
            note=f"median of {rounds} rounds each (asyncio vs uvloop: {rounds_text})",
        )
    ]


def restart_api(bench: Bench, loop: str) -> None:
    bench.stack.config.extra_env["TASKSCHED_EVENT_LOOP"] = loop
    bench.stack.restart_process("api")
    wait_for_port(bench.stack.config.grpc_port, timeout=60)
