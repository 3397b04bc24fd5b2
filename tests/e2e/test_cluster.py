"""The short cluster suite, on each broker: replicas of every process, each on links of its own
that are cut, blackholed and slowed while tasks and a cron schedule flow; nothing may be lost,
stored twice, run twice, fired twice or missed, and no process may give up."""

from __future__ import annotations

import pytest

from chaos.cluster import ClusterConfig, ClusterSuite
from taskscheduler.devstack.stack import Broker

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(400)
def test_replicas_carry_on_through_cut_and_blackholed_links(broker: Broker) -> None:
    report = ClusterSuite(ClusterConfig(tasks=300, rate=30, broker=broker)).run()
    assert report.broker == broker
    assert report.acknowledged == report.attempted >= 300, report
    assert report.lost == 0, report
    assert report.tasks_stored == report.attempted, "a retried call made a second task"
    assert report.duplicated_executions == 0, report
    # A worker cut from PostgreSQL mid-task: its lease expired, another worker ran the task;
    # the first one's handler ran on until its link was back, and the end it then sent changed
    # nothing; and that worker ran tasks again.
    assert report.cut_task_rerun_elsewhere, report.cut_task_attempts
    assert report.cut_worker_late_completion_ignored, (
        report.cut_task_attempts,
        report.cut_worker_handler_end,
    )
    assert report.cut_worker_completed_after_link_back > 0, report
    # With a dispatcher blackholed, the other fired the every-second schedule alone.
    assert report.cron_fires > 20, report
    assert report.cron_fires_missed == 0 and report.cron_fires_doubled == 0, report
    # With one api replica down, the calls went through the other; back, it answered again.
    assert report.answered_while_an_api_was_down > 0, report
    assert min(report.schedule_calls_by_api.values()) > 0, report.schedule_calls_by_api
    assert report.missing_faults == [], report.faults
    assert report.unexpected_exits == [], report.unexpected_exits
    assert report.passed
