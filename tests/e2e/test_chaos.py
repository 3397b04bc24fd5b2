"""The short fault suite: tasks flow while workers are killed, Redis restarts empty, a dispatcher
exits between commit and publish, and PostgreSQL stops; none may be lost or run twice."""

from __future__ import annotations

import pytest

from chaos.suite import Chaos, ChaosConfig

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(300)
def test_no_task_is_lost_or_executed_twice_under_faults() -> None:
    config = ChaosConfig(tasks=400, rate=80, pool_kills=4, dispatcher_crash_probability=0.02)
    report = Chaos(config).run()
    assert report.acknowledged == report.attempted == 400
    assert report.lost == 0, report
    assert report.duplicated_executions == 0, report
    assert sum(report.terminal.values()) == 400
    assert report.published_again > 0  # the dispatcher's crashes left tasks for the repair loop
    injected = " ".join(report.faults)
    for fault in (
        "SIGKILL worker pool process",
        "SIGKILL worker main process",
        "Redis restarted empty",
        "PostgreSQL stopped",
        "dispatcher exited with code 70",
    ):
        assert fault in injected
