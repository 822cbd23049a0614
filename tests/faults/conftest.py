"""Fault proxies on 127.0.0.1 in front of real servers; every one is stopped afterwards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import nbstream
from nbstream.protocol import Message, Session

ProxyFactory = Callable[..., Awaitable[nbstream.FaultProxy]]


@pytest.fixture
async def start_proxy() -> AsyncIterator[ProxyFactory]:
    """Start fault proxies on the test's loop."""
    proxies: list[nbstream.FaultProxy] = []

    async def start(target: Any, **options: Any) -> nbstream.FaultProxy:
        proxy = await nbstream.aproxy(target, **options)
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        await proxy.astop()


async def numbered(message: Message, session: Session) -> AsyncGenerator[str, None]:
    """Streams "0", "1", ... ``n`` (default 60) tokens, slowly enough to cut mid-way."""
    for i in range(int(message.data.get("n", 60))):
        await asyncio.sleep(0.01)
        yield str(i)


def contents(replies: list[Message]) -> list[str]:
    """The texts of the content messages of a reply."""
    return [m.text or "" for m in replies if m.type == "content"]


async def round_trips(client: nbstream.Client, count: int) -> list[float]:
    """Seconds of ``count`` chat round trips (echo server), one after the other."""
    times = []
    for i in range(count):
        started = time.perf_counter()
        await client.achat(f"ping {i}", timeout=10)
        times.append(time.perf_counter() - started)
    return times
