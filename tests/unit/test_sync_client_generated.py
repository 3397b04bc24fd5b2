"""The blocking client is generated from the asyncio one: a stale _sync.py fails here."""

from taskscheduler.devstack import syncgen


def test_sync_client_is_generated_from_the_async_one() -> None:
    expected = syncgen.generate((syncgen.ROOT / syncgen.SOURCE).read_text())
    actual = (syncgen.ROOT / syncgen.TARGET).read_text()
    assert actual == expected, "taskscheduler/client/_sync.py is stale: run `make gen`"


def test_generated_file_says_so() -> None:
    assert (syncgen.ROOT / syncgen.TARGET).read_text().startswith(syncgen.HEADER)
