"""The progress reporter: at most one write per interval, the last report of a burst written
when the interval ends (or the attempt does), bad numbers refused."""

from __future__ import annotations

import math
import threading

import pytest

from taskscheduler.core.errors import StorageUnavailable
from taskscheduler.core.kinds import TaskContext
from taskscheduler.core.model import Progress
from taskscheduler.core.progress import ProgressReporter


class Writes:
    def __init__(self, expected: int = 0) -> None:
        self.written: list[Progress] = []
        self.reached = threading.Event()
        self._expected = expected

    def __call__(self, progress: Progress) -> None:
        self.written.append(progress)
        if len(self.written) >= self._expected:
            self.reached.set()


def test_a_burst_is_written_first_and_last_the_last_by_the_timer() -> None:
    writes = Writes(expected=2)
    reporter = ProgressReporter(writes, interval=0.05)
    for done in range(100):
        reporter.report(done, 99, f"step {done}")
    assert [p.done for p in writes.written] == [0]  # at once; the rest waits for the interval
    assert writes.reached.wait(5)
    assert [(p.done, p.message) for p in writes.written] == [(0, "step 0"), (99, "step 99")]
    reporter.close()
    assert len(writes.written) == 2  # nothing was pending


def test_close_writes_what_is_pending_and_ignores_later_reports() -> None:
    writes = Writes()
    reporter = ProgressReporter(writes, interval=60)
    reporter.report(1)
    reporter.report(2, message="almost")
    reporter.close()
    reporter.report(3)
    assert writes.written == [Progress(1.0), Progress(2.0, None, "almost")]


def test_a_refused_write_is_dropped_not_raised() -> None:
    def refuse(progress: Progress) -> None:
        raise StorageUnavailable("database away")

    reporter = ProgressReporter(refuse, interval=0)
    reporter.report(1)
    reporter.close()


@pytest.mark.parametrize(
    ("done", "total"), [(-1, None), (math.nan, None), (math.inf, None), (1, 0), (1, math.inf)]
)
def test_bad_numbers_are_refused_even_outside_a_worker(done: float, total: float | None) -> None:
    with pytest.raises(ValueError, match="progress"):
        TaskContext("id", 1, 1).report_progress(done, total)


def test_a_long_message_is_cut() -> None:
    writes = Writes()
    reporter = ProgressReporter(writes, interval=0)
    reporter.report(1, None, "x" * 10_000)
    assert len(writes.written[0].message) == 500
