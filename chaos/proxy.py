"""TCP proxies on loopback whose links the cluster suite cuts, blackholes and slows down: one
asyncio loop in a thread of its own serves them all, and the controlling thread flips them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

T = TypeVar("T")
CHUNK = 65536


class LinkState(StrEnum):
    """What a proxy does with the bytes of its connections."""

    UP = "up"  # forwards them
    CUT = "cut"  # closes every connection and refuses new ones: the peer sees a reset
    # Forwards nothing and answers nothing: the client's calls hang until its own timeouts.
    # The server's side is closed, as its TCP keepalive would find the peer gone, so that the
    # sessions (and the locks they hold) end there as they would in a real partition.
    BLACKHOLE = "blackhole"
    SLOW = "slow"  # forwards them, each chunk `delay` seconds late


@dataclass(eq=False)
class _Connection:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for writer in (self.client, self.server):
            with contextlib.suppress(Exception):
                _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Closes with a reset (SO_LINGER 0), as a router dropping the connection leaves it."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Proxy:
    """One link: connections to `port` go on to the upstream server, as `state` allows."""

    def __init__(self, name: str, upstream_host: str, upstream_port: int) -> None:
        self.name = name
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = 0
        self.state = LinkState.UP
        self.delay = 0.0
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._silenced: set[asyncio.StreamWriter] = set()  # blackholed clients, held open

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._drop_all()
        self._release_silenced()

    async def set_state(self, state: LinkState, delay: float = 0.0) -> None:
        self.state, self.delay = state, delay
        if state is LinkState.CUT:
            self._drop_all()
        elif state is LinkState.BLACKHOLE:
            for connection in list(self._connections):
                self._silence(connection)
        elif state in (LinkState.UP, LinkState.SLOW):
            self._release_silenced()

    def _drop_all(self) -> None:
        for connection in list(self._connections):
            connection.close()
        self._connections.clear()

    def _silence(self, connection: _Connection) -> None:
        """The server's side closes; the client's stays open, and hears nothing more."""
        for task in connection.tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            _reset(connection.server)
        self._connections.discard(connection)
        self._silenced.add(connection.client)

    def _release_silenced(self) -> None:
        """The link is back: a blackholed client's server session is gone, and its next packet
        gets a reset, which it sees now."""
        for writer in self._silenced:
            with contextlib.suppress(Exception):
                _reset(writer)
        self._silenced.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.state is LinkState.CUT:
            _reset(writer)
            return
        if self.state is LinkState.BLACKHOLE:
            self._silenced.add(writer)  # the connect succeeds, as SYNs queue; nothing answers
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            _reset(writer)
            return
        if self.state in (LinkState.CUT, LinkState.BLACKHOLE):  # it changed while connecting
            _reset(server_writer)
            if self.state is LinkState.CUT:
                _reset(writer)
            else:
                self._silenced.add(writer)
            return
        connection = _Connection(writer, server_writer)
        connection.tasks = [
            asyncio.create_task(self._pipe(reader, server_writer, connection)),
            asyncio.create_task(self._pipe(server_reader, writer, connection)),
        ]
        self._connections.add(connection)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: _Connection
    ) -> None:
        try:
            while data := await reader.read(CHUNK):
                if self.state is LinkState.SLOW:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            return
        # One side ended: end the other, as the peer would see through a plain connection.
        if connection in self._connections:
            self._connections.discard(connection)
            for task in connection.tasks:
                if task is not asyncio.current_task():
                    task.cancel()
            for end in (connection.client, connection.server):
                with contextlib.suppress(Exception):
                    end.close()


class Proxies:
    """Every proxy of a cluster, on one event loop in a thread; the methods are thread-safe."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.by_name: dict[str, Proxy] = {}

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=30)

    def add(self, name: str, upstream_host: str, upstream_port: int) -> Proxy:
        proxy = Proxy(name, upstream_host, upstream_port)
        self._run(proxy.start())
        self.by_name[name] = proxy
        return proxy

    def set_state(self, name: str, state: LinkState, delay: float = 0.0) -> None:
        self._run(self.by_name[name].set_state(state, delay))

    def close(self) -> None:
        for proxy in self.by_name.values():
            self._run(proxy.stop())
        self._run(_cancel_the_rest())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def _cancel_the_rest() -> None:
    """Ends what the proxies' connections left running (pipes of closed connections)."""
    current = asyncio.current_task()
    rest = [task for task in asyncio.all_tasks() if task is not current]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
