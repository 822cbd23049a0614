"""Fixtures for scale-out tests: a private redis-server per test, nbstream nodes as processes."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TIMEOUT
from tests.scaleout.processes import RedisServer, ServerProcess

if importlib.util.find_spec("redis") is None and not os.environ.get("CI"):
    # These import redis-py; the others skip, naming what is missing.
    collect_ignore = ["test_backplane.py", "test_fanout.py", "test_health.py", "test_outage.py"]


def _missing(what: str) -> None:
    """Skip for lack of ``what`` locally; on CI (which installs it) fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing on CI, where .ci/run installs it")
    pytest.skip(f"{what} is not installed")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server on a free port of 127.0.0.1, stopped after the test."""
    if RedisServer.binary() is None:
        _missing("redis-server (apt-get install redis-server)")
    if importlib.util.find_spec("redis") is None:
        _missing("redis-py (pip install 'nbstream[redis]')")
    server = RedisServer(tmp_path / "redis.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[Any]:
    """A redis-py client on the test's Redis, to look at what the backplane wrote."""
    import redis.asyncio

    client = redis.asyncio.from_url(redis_server.url, socket_timeout=TIMEOUT)
    yield client
    await client.aclose()


NodeFactory = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture
async def start_node(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[NodeFactory]:
    """Start ``nbstream serve`` processes on the test's Redis; all are stopped afterwards.

    ``await start_node(port=..., handler="echo", session_ttl=30)``: extra keywords
    become ``--flags``. Returns once the node answers ``/health``.
    """
    nodes: list[ServerProcess] = []

    async def start(*, port: int | None = None, handler: str = "agent",
                    **options: Any) -> ServerProcess:
        node = ServerProcess(tmp_path / f"node{len(nodes)}.log", redis_server.url, port=port,
                             handler=handler, options=options)
        nodes.append(node)
        await asyncio.to_thread(node.start)
        return node

    yield start
    for node in nodes:
        await asyncio.to_thread(node.stop)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = TIMEOUT) -> None:
    """Wait until ``await check()`` is true, polling every 20 ms, for at most ``timeout``."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)
