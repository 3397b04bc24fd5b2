"""Logging for every process: text or JSON lines (TASKSCHED_LOG_FORMAT), with the task context
(task id, kind, attempt, trace id) on every line logged while a task is handled, and the W3C
trace context (`traceparent`) that carries the trace id from a REST call to the worker."""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

CONTEXT_FIELDS = ("task_id", "kind", "attempt", "trace_id")
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")

_context: ContextVar[dict[str, str]] = ContextVar("taskscheduler_log_context", default={})  # noqa: B039 (never mutated: replaced)
_traceparent: ContextVar[str] = ContextVar("taskscheduler_traceparent", default="")


@contextmanager
def bound(**fields: object) -> Iterator[None]:
    """Adds fields to every line logged in this block (and in what it calls)."""
    token = _context.set(_context.get() | _strings(fields))
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: object) -> None:
    """Adds fields to the current block's context (a task's kind, once it is known)."""
    _context.set(_context.get() | _strings(fields))


def _strings(fields: dict[str, object]) -> dict[str, str]:
    return {key: str(value) for key, value in fields.items() if value not in (None, "")}


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, parent span id) of a valid W3C traceparent, else None."""
    match = TRACEPARENT.match(value or "")
    if match is None or set(match[1]) == {"0"} or set(match[2]) == {"0"}:
        return None
    return match[1], match[2]


def continue_trace(incoming: str | None, new_span: bool = True) -> str:
    """The traceparent for this process's work: the caller's trace with a span of our own (or,
    `new_span` False, the span given: one that OpenTelemetry started), or a new trace. It is
    remembered for this context (the broker message carries it on)."""
    parsed = parse_traceparent(incoming)
    trace_id = parsed[0] if parsed else secrets.token_hex(16)
    span_id = parsed[1] if parsed and not new_span else secrets.token_hex(8)
    traceparent = f"00-{trace_id}-{span_id}-01"
    _traceparent.set(traceparent)
    bind(trace_id=trace_id)
    return traceparent


def current_traceparent() -> str:
    return _traceparent.get()


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the task context, exception."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            if hasattr(record, key):
                document[key] = getattr(record, key)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message [task_id=... kind=... attempt=... trace_id=...]`."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname} {record.name}: {record.getMessage()}"
        context = " ".join(
            f"{key}={getattr(record, key)}" for key in CONTEXT_FIELDS if hasattr(record, key)
        )
        if context:
            line += f" [{context}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(log_format: str, level: str = "INFO") -> None:
    """Replaces the root logger's handlers with one that writes to stderr in `log_format`."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
