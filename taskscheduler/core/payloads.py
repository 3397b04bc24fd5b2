"""Limits on payloads, checked before anything is stored: size, nesting depth, NUL characters
(PostgreSQL's jsonb cannot hold \\u0000)."""

from __future__ import annotations

import json

from taskscheduler.core.errors import InvalidArgument
from taskscheduler.core.model import JSON

# Protobuf parsers stop at 64 nested messages, and each level of a Struct costs two or three.
MAX_DEPTH = 20


def depth(value: JSON) -> int:
    """How deeply objects and lists nest in `value` (a scalar is 0)."""
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    return 0


def check_payload(payload: dict[str, JSON], max_bytes: int) -> None:
    _check_value(payload, "payload", 0)
    size = len(json.dumps(payload, ensure_ascii=False).encode())
    if size > max_bytes:
        raise InvalidArgument(
            "payload", f"is {size} bytes; the limit is {max_bytes}", reason="PAYLOAD_TOO_LARGE"
        )


def _check_value(value: JSON, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidArgument(path, f"nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, path)
            _check_value(item, f"{path}.{key}"[:200], depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_value(item, f"{path}[{index}]"[:200], depth + 1)


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise InvalidArgument(path, "contains a NUL character")
