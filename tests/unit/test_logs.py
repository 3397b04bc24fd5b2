"""Log lines: JSON with the task context, and the W3C trace context continued or started."""

from __future__ import annotations

import json
import logging

from taskscheduler import logs


def record(message: str) -> logging.LogRecord:
    made = logging.LogRecord("taskscheduler.test", logging.INFO, __file__, 1, message, (), None)
    logs.ContextFilter().filter(made)
    return made


def test_json_lines_carry_the_task_context_only_inside_its_block() -> None:
    with logs.bound(task_id="t-1", attempt=2):
        logs.bind(kind="demo.echo")
        inside = json.loads(logs.JsonFormatter().format(record("ran")))
    outside = json.loads(logs.JsonFormatter().format(record("idle")))
    assert inside["message"] == "ran"
    assert (inside["task_id"], inside["attempt"], inside["kind"]) == ("t-1", "2", "demo.echo")
    assert "task_id" not in outside and "kind" not in outside


def test_a_valid_traceparent_is_continued_and_a_bad_one_replaced() -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with logs.bound():
        continued = logs.continue_trace(f"00-{trace_id}-00f067aa0ba902b7-01")
        assert continued.split("-")[1] == trace_id
        assert continued.split("-")[2] != "00f067aa0ba902b7"  # a span of our own
        assert logs.current_traceparent() == continued
    for bad in ("", "garbage", f"00-{'0' * 32}-00f067aa0ba902b7-01", f"01-{trace_id}-zz-01"):
        with logs.bound():
            started = logs.continue_trace(bad)
            assert logs.parse_traceparent(started) is not None
            assert started.split("-")[1] != trace_id
