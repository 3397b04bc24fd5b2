"""The soak's verdicts: a steady run passes; memory or latency that keeps growing, throughput
falling behind, a table outgrowing its retention window, or a failed call fails it."""

from __future__ import annotations

import dataclasses
from typing import Any

from bench.soak import PROCESSES, Report, Sample, SoakConfig, judge

CONFIG = SoakConfig(minutes=40, rate=20, retention_minutes=10)
SAMPLES = 40


def sample(n: int, **changes: Any) -> Sample:
    steady = Sample(
        minute=n,
        rss_mb=dict.fromkeys(PROCESSES, 300.0),
        tasks_stored=12_000,
        tasks_heap_mb=4.0,
        tasks_indexes_mb=7.0,
        attempts_mb=3.0,
        dead_tuples={"tasks": 1000, "task_attempts": 500},
        autovacuums={"tasks": n, "task_attempts": n},
        finished_per_second=20.0,
        start_p50_ms=10.0,
        start_p95_ms=20.0,
        past_retention=0,
        retention_seconds=n * 0.1,
        postgres_cpu_seconds=n * 10.0,
    )
    return dataclasses.replace(steady, **changes)


def failed_checks(report: Report) -> list[str]:
    return [verdict.check for verdict in judge(report, CONFIG) if not verdict.passed]


def test_a_steady_run_passes() -> None:
    report = Report(config={}, samples=[sample(n) for n in range(SAMPLES)])
    assert failed_checks(report) == []


def test_memory_that_keeps_growing_fails() -> None:
    leaking = [
        sample(n, rss_mb=dict.fromkeys(PROCESSES, 300.0) | {"worker": 300.0 + 10 * n})
        for n in range(SAMPLES)
    ]
    assert failed_checks(Report(config={}, samples=leaking)) == ["worker memory"]


def test_latency_that_keeps_growing_fails() -> None:
    slowing = [sample(n, start_p95_ms=20.0 + 10 * n) for n in range(SAMPLES)]
    assert failed_checks(Report(config={}, samples=slowing)) == ["accept-to-start p95"]


def test_throughput_falling_behind_the_rate_fails() -> None:
    behind = [sample(n, finished_per_second=20.0 if n < 30 else 15.0) for n in range(SAMPLES)]
    assert failed_checks(Report(config={}, samples=behind)) == ["throughput keeps up"]


def test_tasks_kept_past_the_window_fail() -> None:
    kept = [sample(n, past_retention=5 if n > 35 else 0) for n in range(SAMPLES)]
    assert failed_checks(Report(config={}, samples=kept)) == [
        "stored tasks track the retention window"
    ]


def test_a_failed_call_a_failed_sample_or_an_exit_fails() -> None:
    report = Report(
        config={},
        samples=[sample(n) for n in range(SAMPLES)],
        failed_calls=["UNAVAILABLE"],
        failed_samples=["OperationalError()"],
        exits=["worker exited with code 1"],
    )
    assert failed_checks(report) == [
        "every call answered",
        "every sample taken",
        "no process exited by itself",
    ]


def test_too_short_a_run_fails() -> None:
    assert failed_checks(Report(config={}, samples=[sample(0)])) == ["enough samples"]
