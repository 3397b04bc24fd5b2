"""Limits on payloads, checked before anything is stored: size, nesting depth, NUL characters
(PostgreSQL's jsonb cannot hold \\u0000), numbers JSON has no literal for."""

from __future__ import annotations

import json
import math

from taskscheduler.core.errors import InvalidArgument
from taskscheduler.core.limits import MAX_PAYLOAD_DEPTH
from taskscheduler.core.model import JSON


def depth(value: JSON) -> int:
    """How deeply objects and lists nest in `value` (a scalar is 0)."""
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    return 0


def check_payload(payload: dict[str, JSON], max_bytes: int) -> None:
    check_json(payload, "payload", 0)
    size = len(json.dumps(payload, ensure_ascii=False).encode())
    if size > max_bytes:
        raise InvalidArgument(
            "payload", f"is {size} bytes; the limit is {max_bytes}", reason="PAYLOAD_TOO_LARGE"
        )


def check_json(value: JSON, path: str, depth: int = 0) -> None:
    """Refuses JSON that PostgreSQL's jsonb or protobuf cannot hold: NUL, NaN and the
    infinities (Python's json reads and writes them, JSON itself has no such numbers), too
    deep. `depth` counts the objects and lists around `value`, as depth() counts them."""
    if isinstance(value, dict | list) and depth >= MAX_PAYLOAD_DEPTH:
        raise InvalidArgument(path, f"nests deeper than {MAX_PAYLOAD_DEPTH} levels")
    if isinstance(value, str):
        check_text(value, path)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument(path, "holds NaN or Infinity, which JSON cannot carry")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, path)
            check_json(item, f"{path}.{key}"[:200], depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json(item, f"{path}[{index}]"[:200], depth + 1)


def check_text(text: str, path: str) -> None:
    """PostgreSQL text cannot hold NUL: refuse it as bad input before it reaches SQL."""
    if "\x00" in text:
        raise InvalidArgument(path, "contains a NUL character")


def contains(whole: JSON, part: JSON) -> bool:
    """Whether `whole` contains `part` as PostgreSQL's jsonb @> decides: every field of an
    object in the other, each element of an array in some element of the other, equal
    scalars (for the in-memory store; PostgreSQL decides for the real one)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            key in whole and contains(whole[key], value) for key, value in part.items()
        )
    if isinstance(part, list):
        return isinstance(whole, list) and all(
            any(contains(item, wanted) for item in whole) for wanted in part
        )
    if isinstance(whole, dict | list):
        return False
    return whole == part and isinstance(whole, bool) == isinstance(part, bool)
