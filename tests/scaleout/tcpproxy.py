"""A small TCP forwarder for network faults in tests: a load balancer, or a path to Redis.

``TcpProxy([port_a, port_b])`` listens on a free port of 127.0.0.1 and hands each new
connection to the next backend in turn (round robin, no affinity, as a Kubernetes
Service or a plain load balancer without sticky sessions). Two faults:

* :meth:`drop` aborts every open connection on both sides, as a network failure
  would (the peers see a reset, no close frame);
* :meth:`freeze` keeps every open connection up but stops forwarding on it (what
  arrives is read and discarded), while new connections work: a Redis failover or a
  pod IP change behind one address, as seen by a client holding old connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass(eq=False)
class _Link:
    """One forwarded connection: its two transports, whether it still forwards."""

    client: asyncio.StreamWriter
    backend: asyncio.StreamWriter
    frozen: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``backends`` (ports on 127.0.0.1), round robin."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.port = 0
        self.picks: list[int] = []
        """The backend index of every connection accepted, in order."""
        self._next = 0
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> TcpProxy:
        """Listen; returns self, with :attr:`port` set."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        """``ws://`` URL of an nbstream endpoint behind this proxy."""
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def redis_url(self) -> str:
        """``redis://`` URL of a Redis behind this proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def connections(self) -> int:
        """Connections open through the proxy now."""
        return len(self._links)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self._next % len(self.backends)
        self._next += 1
        self.picks.append(index)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1",
                                                                 self.backends[index])
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.tasks = [asyncio.create_task(self._pump(reader, up_writer, link)),
                      asyncio.create_task(self._pump(up_reader, writer, link))]

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                    link: _Link) -> None:
        try:
            while data := await source.read(65536):
                if not link.frozen:
                    sink.write(data)
                    await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not link.frozen:
                self._abort(link)

    def _abort(self, link: _Link) -> None:
        self._links.discard(link)
        link.client.transport.abort()
        link.backend.transport.abort()

    def drop(self) -> int:
        """Abort every open connection (both sides); returns how many."""
        links = list(self._links)
        for link in links:
            self._abort(link)
        return len(links)

    def freeze(self) -> int:
        """Stop forwarding on every open connection, keeping it open; returns how many."""
        for link in self._links:
            link.frozen = True
        return len(self._links)

    async def close(self) -> None:
        """Stop listening and abort every connection."""
        if self._server is not None:
            self._server.close()
        links = list(self._links)
        self.drop()
        for link in links:
            for task in link.tasks:
                task.cancel()
            for task in link.tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._server is not None:
            await self._server.wait_closed()
