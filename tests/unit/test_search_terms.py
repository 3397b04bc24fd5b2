"""The dashboard's search box: a task id's start, payload fields, or a JSON object."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.dashboard import search_terms
from taskscheduler.core.limits import MAX_PAYLOAD_DEPTH


@pytest.mark.parametrize(
    ("text", "prefix", "fields"),
    [
        ("4b0c", "4b0c", None),
        ("", "", None),
        ("to=a@b.c", "", {"to": "a@b.c"}),
        ("n=3 vip=true tag=null", "", {"n": 3, "vip": True, "tag": None}),
        ('name="Ada Lovelace" id=\'"42"\'', "", {"name": "Ada Lovelace", "id": "42"}),
        ("customer.id=c1 customer.plan=pro", "", {"customer": {"id": "c1", "plan": "pro"}}),
        ('{"tags": ["x"], "n": 1.5}', "", {"tags": ["x"], "n": 1.5}),
        ("expr=a=b", "", {"expr": "a=b"}),
    ],
)
def test_search_terms(text: str, prefix: str, fields: dict[str, Any] | None) -> None:
    assert search_terms(text) == (prefix, fields)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"to": ', "search: is not JSON"),
        ("{", "search: is not JSON"),
        ("=x", "is not name=value"),
        ("a=1 a.b=2", "'a.b' is given twice"),
        ('to="unclosed', "No closing quotation"),
        (".".join(["a"] * (MAX_PAYLOAD_DEPTH + 1)) + "=1", "nests deeper"),
    ],
)
def test_bad_search_terms_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        search_terms(text)
