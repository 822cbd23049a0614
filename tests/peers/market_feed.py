"""A tiny JSON market feed on plain websockets: a server nbstream did not write.

``{"type": "subscribe", "symbol": S}`` answers ``subscribed`` and then streams a
``quote`` for S every ``interval`` seconds until ``{"type": "unsubscribe", "symbol":
S}`` (answered ``unsubscribed``); ``{"type": "price", "symbol": S}`` answers one
``quote``. Anything else gets ``{"type": "error", "reason": ...}``. Prices are made up
from the symbol and a counter, always positive.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


def quote(symbol: str, tick: int) -> dict[str, Any]:
    """The quote of ``symbol`` at its ``tick``-th update."""
    base = 100 + sum(map(ord, symbol)) % 50
    return {"type": "quote", "symbol": symbol, "price": round(base + (tick % 7) * 0.25, 2),
            "tick": tick}


async def _stream(ws: ServerConnection, symbol: str, interval: float) -> None:
    for tick in range(1_000_000):  # bounded: far beyond any test
        await ws.send(json.dumps(quote(symbol, tick)))
        await asyncio.sleep(interval)


async def feed(ws: ServerConnection, interval: float = 0.05) -> None:
    """Serve one client of the feed until it leaves."""
    streams: dict[str, asyncio.Task[None]] = {}
    try:
        async for frame in ws:
            try:
                request = json.loads(frame)
                kind, symbol = request["type"], str(request["symbol"])
            except (ValueError, TypeError, KeyError):
                await ws.send(json.dumps({"type": "error", "reason": "send JSON with type "
                                                                     "and symbol"}))
                continue
            if kind == "subscribe" and symbol not in streams:
                await ws.send(json.dumps({"type": "subscribed", "symbol": symbol}))
                streams[symbol] = asyncio.create_task(_stream(ws, symbol, interval))
            elif kind == "unsubscribe" and symbol in streams:
                streams.pop(symbol).cancel()
                await ws.send(json.dumps({"type": "unsubscribed", "symbol": symbol}))
            elif kind == "price":
                await ws.send(json.dumps(quote(symbol, 0)))
            else:
                await ws.send(json.dumps({"type": "error", "reason": f"cannot {kind} "
                                                                     f"{symbol} now"}))
    except ConnectionClosed:
        pass
    finally:
        for task in streams.values():
            task.cancel()
        for task in streams.values():
            with suppress(asyncio.CancelledError, ConnectionClosed):
                await task


@asynccontextmanager
async def market_feed() -> AsyncIterator[str]:
    """Run the feed on 127.0.0.1 (a free port) on the running loop; yields its URL."""
    async with serve(feed, "127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/feed"
