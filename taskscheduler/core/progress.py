"""A running handler's progress reports, throttled so that a tight loop costs the database at
most a few writes a second, and the last report of a burst is never dropped."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from taskscheduler.core.errors import StorageUnavailable
from taskscheduler.core.limits import MAX_PROGRESS_MESSAGE_CHARS, PROGRESS_WRITE_INTERVAL_SECONDS
from taskscheduler.core.model import Progress

log = logging.getLogger("taskscheduler.worker")


def progress_of(done: float, total: float | None, message: str) -> Progress:
    """A report checked as a handler gives it: ValueError names what is wrong."""
    if not isinstance(done, int | float) or not math.isfinite(done) or done < 0:
        raise ValueError(f"progress done must be a finite number >= 0, not {done!r}")
    if total is not None and (
        not isinstance(total, int | float) or not math.isfinite(total) or total <= 0
    ):
        raise ValueError(f"progress total must be a finite number > 0 or None, not {total!r}")
    if not isinstance(message, str):
        raise ValueError(f"progress message must be a string, not {type(message).__name__}")
    return Progress(
        float(done), None if total is None else float(total), message[:MAX_PROGRESS_MESSAGE_CHARS]
    )


class ProgressReporter:
    """Writes the latest report at once when the last write is PROGRESS_WRITE_INTERVAL_SECONDS
    old, else when that interval has passed (a timer thread), and what is still pending when the
    attempt ends (`close`). A write the database refuses is logged and dropped: progress is
    never worth failing the task for."""

    def __init__(
        self,
        write: Callable[[Progress], object],
        interval: float = PROGRESS_WRITE_INTERVAL_SECONDS,
    ) -> None:
        self._write = write
        self._interval = interval
        self._lock = threading.Lock()
        self._pending: Progress | None = None
        self._next_write = 0.0
        self._timer: threading.Timer | None = None
        self._closed = False

    def report(self, done: float, total: float | None = None, message: str = "") -> None:
        progress = progress_of(done, total, message)
        with self._lock:
            if self._closed:
                return
            self._pending = progress
            wait = self._next_write - time.monotonic()
            if wait <= 0:
                self._write_pending()
            elif self._timer is None:
                self._timer = threading.Timer(wait, self._flush)
                self._timer.daemon = True
                self._timer.start()

    def close(self) -> None:
        """Writes what is pending; later reports are ignored (the attempt has ended)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._write_pending()
            self._closed = True

    def _flush(self) -> None:
        with self._lock:
            self._timer = None
            if not self._closed:
                self._write_pending()

    def _write_pending(self) -> None:
        """Called with the lock held, so that two writes never pass each other."""
        if self._pending is None:
            return
        progress, self._pending = self._pending, None
        self._next_write = time.monotonic() + self._interval
        try:
            self._write(progress)
        except StorageUnavailable as exc:
            log.warning("progress not written: %s", exc)
