"""Shared fixtures: real servers on 127.0.0.1, and the one timing constant tests scale from."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

import nbstream

TIMEOUT = 5.0
"""Seconds any receive in a test may wait; every timed assertion scales from it."""


async def eventually(predicate: Callable[[], object], timeout: float = TIMEOUT,
                     what: str = "") -> None:
    """Wait until ``predicate()`` is true, checking every few milliseconds.

    Raises:
        AssertionError: naming ``what`` (or the predicate) if it stays false for
            ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            raise AssertionError(f"still false after {timeout} s: {what or predicate}")
        await asyncio.sleep(0.005)


def eventually_sync(predicate: Callable[[], object], timeout: float = TIMEOUT,
                    what: str = "") -> None:
    """:func:`eventually` for synchronous tests (the condition changes on another thread)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"still false after {timeout} s: {what or predicate}")
        time.sleep(0.005)


async def recv_json(ws: ClientConnection, timeout: float = TIMEOUT) -> dict[str, Any]:
    """Receive one frame from a raw websockets client and decode it, with a timeout."""
    frame = await asyncio.wait_for(ws.recv(), timeout)
    decoded: dict[str, Any] = json.loads(frame)
    return decoded


async def recv_until_end(ws: ClientConnection, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
    """Raw-client receive loop of the seed's test: read envelopes until ``end``."""
    replies = []
    while True:
        data = await recv_json(ws, timeout)
        replies.append(data)
        if data["type"] == "end":
            return replies


ServerFactory = Callable[..., Awaitable[nbstream.Server]]


@pytest.fixture(scope="session")
def certificates() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for 127.0.0.1 and a client context trusting its test CA."""
    import trustme  # the test extra's; the 3.12/3.13 venvs of .ci/run do without it

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


@pytest.fixture
async def start_server() -> AsyncIterator[ServerFactory]:
    """Start nbstream servers on the test's loop; every one is stopped afterwards."""
    servers: list[nbstream.Server] = []

    async def start(handler: Any = "echo", **options: Any) -> nbstream.Server:
        server = await nbstream.aserve(handler, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.astop(timeout=1.0)
