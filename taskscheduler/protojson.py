"""google.protobuf Struct/Value <-> JSON values, shared by the api and the gateway."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2

MAX_EXACT_FLOAT_INT = 2**53


def _integral_numbers(value: Any) -> Any:
    """Struct holds every number as a double; give integral ones back as ints ({"n": 2})."""
    if isinstance(value, float) and value.is_integer() and abs(value) < MAX_EXACT_FLOAT_INT:
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_numbers(item) for item in value]
    return value


def struct_to_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    return _integral_numbers(json_format.MessageToDict(message))  # type: ignore[no-any-return]


def value_to_json(message: struct_pb2.Value) -> Any:
    return _integral_numbers(json_format.MessageToDict(message))
