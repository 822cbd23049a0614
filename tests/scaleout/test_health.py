"""Health an orchestrator can act on, metrics an operator can alert on, logs one can read."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import nbstream
from nbstream.backplane.redis import RedisBackplane
from nbstream.protocol import CloseCode, ErrorCode
from tests.conftest import TIMEOUT, ServerFactory
from tests.scaleout.conftest import NodeFactory
from tests.scaleout.processes import RedisServer
from tests.scaleout.test_outage import http_health, http_ready

NODE_TTL = 1.0
"""A short liveness window, so that a node whose key could not be refreshed drops out fast."""


@pytest.fixture
async def full_redis(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[Any]:
    """A second redis-server, limited to 4 MB without eviction, and a client on it.

    ``await fill()`` (the fixture's value) fills it up: from then on Redis refuses
    every command that needs memory, as a production Redis at its ``maxmemory`` does.
    """
    import redis.asyncio

    server = RedisServer(tmp_path / "full-redis.log",
                         options=["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"])
    server.start()
    client = redis.asyncio.from_url(server.url, socket_timeout=TIMEOUT)

    async def fill() -> None:
        for i in range(1000):
            try:
                await client.set(f"ballast:{i}", b"x" * 100_000)
            except redis.exceptions.ResponseError as error:
                assert "maxmemory" in str(error)
                return
        raise AssertionError("Redis never filled up")

    fill.url = server.url  # type: ignore[attr-defined]
    yield fill
    await client.aclose()
    server.stop()


async def refusal(url: str, user: str) -> nbstream.StreamClosed:
    with pytest.raises(nbstream.StreamClosed) as refused:
        await nbstream.aconnect(url, user=user, reconnect=False, timeout=TIMEOUT)
    return refused.value


async def test_redis_out_of_memory_unready_quiet_logs_and_limits_fail_as_chosen(
    full_redis: Any, start_server: ServerFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="nbstream.backplane")
    url: str = full_redis.url
    agent = nbstream.Agent(token_delay=0)

    async def node(**options: Any) -> nbstream.Server:
        backplane = RedisBackplane(url, node_ttl=NODE_TTL, **options)
        return await start_server(agent, backplane=backplane, max_connections_per_user=2)

    writer, lenient, strict = await node(), await node(), await node(limits="closed")
    zoe = [await nbstream.aconnect(writer.url, user="zoe", timeout=TIMEOUT) for _ in range(2)]
    await full_redis()
    until = time.monotonic() + 3 * NODE_TTL  # long enough for liveness keys to lapse
    chats = 0
    while time.monotonic() < until:  # history writes are refused all along
        await zoe[chats % 2].achat(f"chat {chats}")
        chats += 1

    assert writer.health()["dropped"] >= chats
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert 1 <= len(errors) <= 3, [r.getMessage() for r in errors]  # not one per batch
    status, ready = await asyncio.to_thread(http_ready, writer)
    assert status == 503 and any("dropped" in p for p in ready["problems"]), ready
    assert (await asyncio.to_thread(http_health, writer))["status"] == "ok"

    # zoe's two connections still count (the node's liveness survives a full Redis) ...
    for server in (lenient, strict):
        closed = await refusal(server.url, "zoe")
        assert closed.code == CloseCode.TRY_AGAIN_LATER and closed.error is not None
        assert closed.error.code == ErrorCode.TOO_MANY_CONNECTIONS
        assert "already has 2 connections" in closed.error.message
    # ... and where Redis cannot count a new connection in, each node does as configured.
    yan = await nbstream.aconnect(lenient.url, user="yan", reconnect=False, timeout=TIMEOUT)
    assert (await yan.achat("admitted: limits fail open here"))[-1].type == "end"
    closed = await refusal(strict.url, "yan")
    assert closed.error is not None and closed.error.code == ErrorCode.TOO_MANY_CONNECTIONS
    assert "try again later" in closed.error.message
    for client in (*zoe, yan):
        await client.aclose()


async def test_metrics_show_the_backplane(start_node: NodeFactory) -> None:
    node = await start_node(handler="echo")
    figures = await asyncio.to_thread(node.metrics)
    assert figures["nbstream_backplane_up"] == 1
    assert figures["nbstream_backplane_queued"] == 0
    for counter in ("reconnects", "dropped_writes", "fanout_unsent", "fanout_missed",
                    "handoffs", "handoff_timeouts"):
        assert figures[f"nbstream_backplane_{counter}_total"] == 0, counter

    async def heartbeat_came_back() -> dict[str, float]:
        for _ in range(10 * int(TIMEOUT)):
            figures = await asyncio.to_thread(node.metrics)
            if "nbstream_backplane_fanout_lag_seconds" in figures:
                return figures
            await asyncio.sleep(0.1)
        raise AssertionError("no fan-out heartbeat came back")

    figures = await heartbeat_came_back()
    assert figures["nbstream_backplane_fanout_ok"] == 1
    assert 0 <= figures["nbstream_backplane_fanout_lag_seconds"] < 1.0
    assert figures["nbstream_backplane_fanout_silence_seconds"] < 3.0


async def test_a_server_without_a_backplane_is_ready_until_it_stops(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo", metrics=True)
    status, ready = await asyncio.to_thread(http_ready, server)
    assert (status, ready) == (200, {"ready": True, "problems": []})
    assert server.readiness() == []
    assert "nbstream_backplane_up" not in server.metrics.render().decode()  # type: ignore[union-attr]
