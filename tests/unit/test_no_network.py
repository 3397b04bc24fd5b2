"""The unit tier's guard: a test that reaches for a server fails instead."""

from __future__ import annotations

import socket

import pytest

from tests.unit.conftest import NetworkUsed


@pytest.mark.parametrize("port", [5432, 6379, 50051])
def test_a_unit_test_cannot_reach_a_server(port: int) -> None:
    with pytest.raises(NetworkUsed):
        socket.create_connection(("127.0.0.1", port), timeout=1)
