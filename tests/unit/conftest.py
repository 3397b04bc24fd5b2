"""The unit tier needs no server and no network: a connection to any address fails at once."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from taskscheduler.testing import InMemoryServices
from tests.unit.memory import Clock, services

_NETWORK_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class NetworkUsed(RuntimeError):
    """A unit test tried to reach a server: it belongs in tests/integration."""


def _refused(original: Any) -> Any:
    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in _NETWORK_FAMILIES:
            raise NetworkUsed(f"a unit test connected to {address!r}")
        return original(self, address)

    return connect


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per test, so that a run of several tiers gives the network back to the others. Unix
    sockets stay usable: asyncio's event loop wakes itself through a socket pair."""
    monkeypatch.setattr(socket.socket, "connect", _refused(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", _refused(socket.socket.connect_ex))


@pytest.fixture
def clock() -> Clock:
    """The in-memory stores' time, moved by the test."""
    return Clock()


@pytest.fixture
def app(clock: Clock) -> InMemoryServices:
    """The use cases on the in-memory stores (test_executor adds its own gate)."""
    return services(clock)
