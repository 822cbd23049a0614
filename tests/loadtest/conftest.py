"""Fixtures for load tests: a plain websockets echo server next to the nbstream ones."""

from __future__ import annotations

import json
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


async def _market_feed(ws: ServerConnection) -> None:
    """A tiny JSON market feed: subscribe (ack, then a quote), unsubscribe (ack)."""
    async for frame in ws:
        try:
            request = json.loads(frame)
        except ValueError:
            await ws.send(json.dumps({"type": "error", "reason": "not JSON"}))
            continue
        symbol = request.get("symbol")
        if request.get("type") == "subscribe":
            await ws.send(json.dumps({"type": "subscribed", "symbol": symbol}))
            price = -1.0 if symbol == "BAD" else 100.0 + len(str(symbol))
            await ws.send(json.dumps({"type": "quote", "symbol": symbol, "price": price}))
        elif request.get("type") == "unsubscribe":
            await ws.send(json.dumps({"type": "unsubscribed", "symbol": symbol}))
        elif request.get("type") == "close":
            await ws.close(1011, "asked to")
        else:
            await ws.send(json.dumps({"type": "error", "reason": "unknown request"}))


@pytest.fixture
async def feed_url() -> AsyncIterator[str]:
    """A plain websockets server nbstream did not write: a JSON market feed."""
    async with serve(_market_feed, "127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
