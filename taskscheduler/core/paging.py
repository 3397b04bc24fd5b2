"""Opaque page tokens for keyset pagination (AIP-158)."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime

from taskscheduler.core.errors import InvalidArgument
from taskscheduler.core.model import PageCursor, TaskFilter

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size_or_default(page_size: int) -> int:
    if page_size < 0 or page_size > MAX_PAGE_SIZE:
        raise InvalidArgument("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
    return page_size or DEFAULT_PAGE_SIZE


def _filter_fingerprint(task_filter: TaskFilter) -> str:
    canonical = json.dumps(
        [
            sorted(task_filter.statuses),
            task_filter.kind,
            task_filter.queue,
            str(task_filter.schedule_id),
        ]
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_page_token(cursor: PageCursor, task_filter: TaskFilter) -> str:
    body = {
        "t": cursor.create_time.isoformat(),
        "i": str(cursor.task_id),
        "f": _filter_fingerprint(task_filter),
    }
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


def decode_page_token(token: str, task_filter: TaskFilter) -> PageCursor | None:
    """Returns the cursor of a token; a token made for other filters is an error (AIP-158)."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode()))
        cursor = PageCursor(datetime.fromisoformat(body["t"]), uuid.UUID(body["i"]))
        fingerprint = body["f"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("page_token", "malformed page token") from None
    if fingerprint != _filter_fingerprint(task_filter):
        raise InvalidArgument("page_token", "the page token was made for other filters")
    return cursor


def encode_name_token(name: str) -> str:
    """The token of a page of named resources (queues, schedules) that ends at `name`."""
    return base64.urlsafe_b64encode(json.dumps({"n": name}).encode()).decode().rstrip("=")


def decode_name_token(token: str) -> str:
    """The last name of the previous page; empty for the first page."""
    if not token:
        return ""
    try:
        padded = token + "=" * (-len(token) % 4)
        name = json.loads(base64.urlsafe_b64decode(padded.encode()))["n"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("page_token", "malformed page token") from None
    if not isinstance(name, str):
        raise InvalidArgument("page_token", "malformed page token")
    return name
