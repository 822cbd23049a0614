"""WebSocket peers that complete the handshake and then never answer a ping (or, asked
to, answer and count every ping).

websockets answers pings by itself, so a peer that stops answering is written here
on websockets' sans-I/O protocol objects (public API) over plain asyncio streams: it
reads and parses frames, but never writes what the protocol queued (the pongs).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from tests.conftest import TIMEOUT


class SilentClient:
    """A client that opens a WebSocket to ``url`` and then only listens."""

    def __init__(self, url: str) -> None:
        self.protocol = ClientProtocol(parse_uri(url))
        self.uri = parse_uri(url)
        self.pings = 0
        """Pings received (and never answered)."""
        self.ping_payloads: list[bytes] = []

    async def open(self) -> None:
        """Connect and complete the opening handshake."""
        self.reader, self.writer = await asyncio.open_connection(self.uri.host, self.uri.port)
        self.protocol.send_request(self.protocol.connect())
        self.writer.write(b"".join(self.protocol.data_to_send()))
        while self.protocol.handshake_exc is None and not self.protocol.events_received():
            self.protocol.receive_data(await asyncio.wait_for(self.reader.read(65536),
                                                              TIMEOUT))
        assert self.protocol.handshake_exc is None, self.protocol.handshake_exc

    async def answer_pings_until(self, done: Callable[[], bool], timeout: float = TIMEOUT
                                 ) -> None:
        """Read frames, answering pings (their payloads kept), until ``done()``."""
        async with asyncio.timeout(timeout):
            while not done():
                data = await self.reader.read(65536)
                assert data, "the server closed the connection"
                self.protocol.receive_data(data)
                self.ping_payloads += [
                    bytes(event.data) for event in self.protocol.events_received()
                    if isinstance(event, Frame) and event.opcode is Opcode.PING]
                self.writer.write(b"".join(self.protocol.data_to_send()))

    async def wait_closed(self, timeout: float = TIMEOUT) -> Close | None:
        """Read until the server closes; the close frame it sent (None: none came)."""
        async with asyncio.timeout(timeout):
            while data := await self.reader.read(65536):
                self.protocol.receive_data(data)
                self.pings += sum(1 for event in self.protocol.events_received()
                                  if isinstance(event, Frame) and event.opcode is Opcode.PING)
        self.writer.close()
        return self.protocol.close_rcvd


@asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """A server on 127.0.0.1 that accepts WebSockets and never answers pings; yields
    its URL."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        protocol = ServerProtocol()
        request = None
        while request is None:
            data = await reader.read(65536)
            if not data:
                return
            protocol.receive_data(data)
            request = next(iter(protocol.events_received()), None)
        assert isinstance(request, Request)
        protocol.send_response(protocol.accept(request))
        writer.write(b"".join(protocol.data_to_send()))
        while await reader.read(65536):  # listen, answer nothing
            pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/"
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
