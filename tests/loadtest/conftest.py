"""Fixtures for load tests: a plain websockets echo server next to the nbstream ones."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve


async def _echo(ws: ServerConnection) -> None:
    async for frame in ws:
        await ws.send(frame)


@pytest.fixture
async def echo_url() -> AsyncIterator[str]:
    """A plain websockets echo server (no envelopes) on the test's loop."""
    async with serve(_echo, "127.0.0.1", 0, compression=None) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nobody listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"ws://127.0.0.1:{probe.getsockname()[1]}/ws"
