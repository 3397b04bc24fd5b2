"""The cluster suite's TCP proxy: a link up forwards, cut resets, blackholed goes silent (and
resets once it is back), slowed delays each chunk."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from chaos.proxy import LinkState, Proxies


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(ConnectionError):  # the proxy resets it, as these tests ask
            while data := self.request.recv(4096):
                self.request.sendall(data)


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxies() -> Iterator[Proxies]:
    bank = Proxies()
    yield bank
    bank.close()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    sock.settimeout(2)
    return sock


def round_trip(sock: socket.socket, data: bytes = b"ping") -> bytes:
    sock.sendall(data)
    return sock.recv(4096)


def test_an_up_link_forwards_both_ways(proxies: Proxies, echo_port: int) -> None:
    proxy = proxies.add("p", "127.0.0.1", echo_port)
    with connect(proxy.port) as sock:
        assert round_trip(sock, b"hello") == b"hello"


def test_a_cut_link_resets_its_connections_and_refuses_new_ones(
    proxies: Proxies, echo_port: int
) -> None:
    proxy = proxies.add("p", "127.0.0.1", echo_port)
    with connect(proxy.port) as sock:
        assert round_trip(sock) == b"ping"
        proxies.set_state("p", LinkState.CUT)
        with pytest.raises(ConnectionResetError):
            round_trip(sock)
    # A new connection is reset as soon as it is accepted: at the connect, or at the first read.
    with pytest.raises(ConnectionResetError), connect(proxy.port) as sock:
        round_trip(sock)
    proxies.set_state("p", LinkState.UP)
    with connect(proxy.port) as sock:
        assert round_trip(sock) == b"ping"


def test_a_blackholed_link_answers_nothing_then_resets_when_back(
    proxies: Proxies, echo_port: int
) -> None:
    proxy = proxies.add("p", "127.0.0.1", echo_port)
    with connect(proxy.port) as sock:
        assert round_trip(sock) == b"ping"
        proxies.set_state("p", LinkState.BLACKHOLE)
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            round_trip(sock)
        proxies.set_state("p", LinkState.UP)
        with pytest.raises(ConnectionResetError):
            round_trip(sock)
    with connect(proxy.port) as sock:
        assert round_trip(sock) == b"ping"


def test_a_slowed_link_delays_each_chunk(proxies: Proxies, echo_port: int) -> None:
    proxy = proxies.add("p", "127.0.0.1", echo_port)
    proxies.set_state("p", LinkState.SLOW, delay=0.2)
    with connect(proxy.port) as sock:
        started = time.monotonic()
        assert round_trip(sock) == b"ping"
        assert time.monotonic() - started >= 0.4  # there and back
