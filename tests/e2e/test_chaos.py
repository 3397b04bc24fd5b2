"""The short fault suite, on each broker: tasks and workflows flow while workers are killed, the
broker (Redis, RabbitMQ) restarts empty, a dispatcher exits between commit and publish, the api
is killed, PostgreSQL stops, and it crashes twice without a checkpoint; none may be lost, made
twice or run twice, and no step may start before its dependencies."""

from __future__ import annotations

import pytest

from chaos.suite import CRASHES, Chaos, ChaosConfig
from taskscheduler.devstack.stack import Broker

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(300)
def test_no_task_is_lost_or_executed_twice_under_faults(broker: Broker) -> None:
    report = Chaos(ChaosConfig(tasks=400, rate=80, pool_kills=4, broker=broker)).run()
    assert report.broker == broker
    assert report.acknowledged == report.attempted >= 400
    assert report.lost == 0, report
    assert report.tasks_stored == report.attempted, "a retried call made a second task"
    assert report.duplicated_executions == 0, report
    # Workflows through the same faults: every one terminal, no step started before its
    # dependencies succeeded, no step spawned twice.
    assert report.workflows_acknowledged == report.workflows_attempted > 0, report
    assert report.workflows_lost == 0, report
    assert report.workflows_stored == report.workflows_attempted, "a retried call made two"
    assert report.steps_started_early == 0, report
    assert report.steps_spawned > 0 and report.spawned_twice == 0, report
    assert sum(report.terminal.values()) == report.attempted
    # Every fault happened, each while tasks were unfinished, and no process gave up by itself.
    assert report.missing_faults == [], report.faults
    assert min(report.unfinished_at_faults) > 0, report.unfinished_at_faults
    assert report.unexpected_exits == [], report.unexpected_exits
    # Each crash was one: the next start of PostgreSQL replayed the WAL.
    assert report.crash_recoveries >= CRASHES, report.faults
    # A killed busy worker's task ran again after its lease, and the dispatcher's crash between
    # commit and publish left tasks that the repair loop published again.
    assert report.recovered_from_lost_workers > 0, report
    # Found by its lease (3 s here, plus the attempt's run and a reaper pass), never by Redis's
    # visibility timeout of an hour.
    assert 0 < report.longest_lost_worker_detection_seconds < 30, report
    assert report.published_again > 0, report
    assert report.passed
