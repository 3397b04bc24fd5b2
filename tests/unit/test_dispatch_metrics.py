"""A dispatch pass's metrics: what it let through, and the limit that held a queue back."""

from __future__ import annotations

from prometheus_client import REGISTRY

from taskscheduler.adapters import metrics
from taskscheduler.core.model import HeldBackBy


def throttled(queue: str, limit: str) -> float:
    labels = {"tenant": "t-metrics", "queue": queue, "limit": limit}
    return REGISTRY.get_sample_value("taskscheduler_queue_throttled_total", labels) or 0.0


def test_the_limits_keep_the_label_values_the_dashboards_know() -> None:
    assert [limit.value for limit in HeldBackBy] == ["rate", "concurrency", "dispatch_ahead"]


def test_a_held_back_queue_is_counted_under_its_limit_and_a_free_one_not_at_all() -> None:
    for limit in HeldBackBy:
        metrics.observe_dispatch("t-metrics", "held", 1, limit)
    metrics.observe_dispatch("t-metrics", "free", 3, None)
    assert [throttled("held", limit.value) for limit in HeldBackBy] == [1.0, 1.0, 1.0]
    assert [throttled("free", limit.value) for limit in HeldBackBy] == [0.0, 0.0, 0.0]
    dispatched = {"tenant": "t-metrics", "queue": "free"}
    assert REGISTRY.get_sample_value("taskscheduler_queue_dispatched_total", dispatched) == 3
