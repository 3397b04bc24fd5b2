"""A search by the start of a task id is a range of the primary key."""

from __future__ import annotations

import uuid

import pytest

from taskscheduler.core.errors import InvalidArgument
from taskscheduler.core.tasks import id_range_of_prefix


def test_a_prefix_is_the_range_of_the_ids_that_start_so() -> None:
    low, high = id_range_of_prefix("4B0C-1")
    assert low == uuid.UUID("4b0c1000-0000-0000-0000-000000000000")
    assert high == uuid.UUID("4b0c2000-0000-0000-0000-000000000000")
    whole = uuid.uuid4()
    assert id_range_of_prefix(str(whole)) == (whole, uuid.UUID(int=whole.int + 1))
    assert id_range_of_prefix("ff") == (uuid.UUID("ff" + "0" * 30), None)  # open above


@pytest.mark.parametrize("prefix", ["", "-", "xyz", "0" * 33, "a" + "-" * 40])
def test_a_bad_prefix_is_refused_naming_the_field(prefix: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        id_range_of_prefix(prefix)
    assert raised.value.field == "task_id_prefix"
