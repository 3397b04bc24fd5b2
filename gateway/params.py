"""The query parameters every list route shares (REST and the dashboard): paging; and the task
list's payload filter, a JSON object in a query parameter."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi.exceptions import RequestValidationError

from taskscheduler.core.limits import MAX_PAGE_SIZE, MAX_PAGE_TOKEN_LENGTH, MAX_PAYLOAD_DEPTH
from taskscheduler.core.paging import DEFAULT_PAGE_SIZE
from taskscheduler.core.payloads import depth

PageSize = Annotated[int, Query(ge=0, le=MAX_PAGE_SIZE, description=f"0: {DEFAULT_PAGE_SIZE}.")]
PageToken = Annotated[str, Query(max_length=MAX_PAGE_TOKEN_LENGTH)]


def json_object(text: str) -> dict[str, Any]:
    """`text` as a JSON object a protobuf Struct can hold; ValueError saying what it is not."""
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"is not JSON ({error.msg})") from None
    if not isinstance(parsed, dict):
        raise ValueError("must be a JSON object")
    if depth(parsed) > MAX_PAYLOAD_DEPTH:
        raise ValueError(f"nests deeper than {MAX_PAYLOAD_DEPTH} levels")
    return parsed


def _refused(message: str) -> RequestValidationError:
    error = {"loc": ("query", "payload_contains"), "msg": message, "type": "value_error"}
    return RequestValidationError([error])


def _payload_filter(
    payload_contains: Annotated[
        str,
        Query(
            description='Only tasks whose payload contains this JSON object: {"to": "a@b.c"} '
            "matches every payload whose field `to` is that."
        ),
    ] = "",
) -> dict[str, Any] | None:
    if not payload_contains:
        return None
    try:
        return json_object(payload_contains)
    except ValueError as error:
        raise _refused(str(error)) from None


PayloadFilter = Annotated[dict[str, Any] | None, Depends(_payload_filter)]
