"""Opaque page tokens for keyset pagination (AIP-158)."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from taskscheduler.core.errors import InvalidArgument
from taskscheduler.core.limits import MAX_PAGE_SIZE, MAX_PAGE_TOKEN_LENGTH
from taskscheduler.core.model import PageCursor, ResourcePosition, TaskFilter

DEFAULT_PAGE_SIZE = 50


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
            # Only when set: the tokens made before the filter existed stay valid.
            *([str(task_filter.workflow_id)] if task_filter.workflow_id else []),
            *([str(task_filter.id_range[0])] if task_filter.id_range else []),
            *([task_filter.error_type] if task_filter.error_type else []),
            *([task_filter.payload_contains] if task_filter.payload_contains is not None else []),
        ],
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _encode(body: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


def _decode(token: str) -> Any:
    """The body of a token; InvalidArgument naming page_token when it is not one of ours."""
    if len(token) > MAX_PAGE_TOKEN_LENGTH:
        raise InvalidArgument("page_token", f"must be at most {MAX_PAGE_TOKEN_LENGTH} characters")
    try:
        padded = token + "=" * (-len(token) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()))
    except ValueError:
        raise InvalidArgument("page_token", "malformed page token") from None


def encode_page_token(cursor: PageCursor, task_filter: TaskFilter) -> str:
    return _encode(
        {
            "t": cursor.create_time.isoformat(),
            "i": str(cursor.task_id),
            "f": _filter_fingerprint(task_filter),
        }
    )


def decode_page_token(token: str, task_filter: TaskFilter) -> PageCursor | None:
    """Returns the cursor of a token; a token made for other filters is an error (AIP-158)."""
    if not token:
        return None
    body = _decode(token)
    try:
        cursor = PageCursor(datetime.fromisoformat(_field(body, "t")), uuid.UUID(_field(body, "i")))
    except ValueError:
        raise InvalidArgument("page_token", "malformed page token") from None
    fingerprint = _field(body, "f")
    if fingerprint != _filter_fingerprint(task_filter):
        raise InvalidArgument("page_token", "the page token was made for other filters")
    return cursor


def encode_name_token(name: str) -> str:
    """The token of a page of queues, by name, that ends at `name`."""
    return _encode({"n": name})


def decode_name_token(token: str) -> str:
    """The last name of the previous page; empty for the first page."""
    if not token:
        return ""
    return _field(_decode(token), "n")


def encode_position_token(position: ResourcePosition) -> str:
    """The token of a page, in creation order, that ends at `position` (schedules)."""
    return _encode({"t": position.create_time.isoformat(), "i": str(position.resource_id)})


def decode_position_token(token: str) -> ResourcePosition | None:
    if not token:
        return None
    body = _decode(token)
    try:
        return ResourcePosition(
            datetime.fromisoformat(_field(body, "t")), uuid.UUID(_field(body, "i"))
        )
    except ValueError:
        raise InvalidArgument("page_token", "malformed page token") from None


def _field(body: Any, key: str) -> str:
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, str):
        raise InvalidArgument("page_token", "malformed page token")
    return value
