"""Redis goes away and comes back: errors are clear, nothing hangs, everything recovers."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

import nbstream
from nbstream.backplane import ClaimOutcome
from nbstream.backplane.redis import DROP_WINDOW, RedisBackplane
from tests.conftest import TIMEOUT, ServerFactory
from tests.scaleout.conftest import eventually
from tests.scaleout.processes import RedisServer


def http_health(server: nbstream.Server) -> dict[str, Any]:
    with urllib.request.urlopen(server.health_url, timeout=1.0) as response:
        decoded: dict[str, Any] = json.loads(response.read())
        return decoded


def http_ready(server: nbstream.Server) -> tuple[int, dict[str, Any]]:
    """``GET /ready``: the status and the JSON body (503 is an answer, not an error)."""
    address = server.health_url.removesuffix("/health") + "/ready"
    try:
        with urllib.request.urlopen(address, timeout=1.0) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_redis_restart_degrades_then_recovers(
    redis_server: RedisServer, start_server: ServerFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="nbstream.backplane.redis")
    agent = nbstream.Agent(token_delay=0)
    here = await start_server(agent, backplane=RedisBackplane(redis_server.url, max_queue=20))
    there = await start_server(agent, backplane=redis_server.url)
    ann = await nbstream.aconnect(here.url, user="ann", timeout=TIMEOUT)
    bob = await nbstream.aconnect(there.url, user="bob", timeout=TIMEOUT)
    await here.abroadcast("before")
    assert (await bob.arecv()).text == "before"
    assert (await ann.arecv()).text == "before"

    await asyncio.to_thread(redis_server.stop)
    await eventually(lambda: _down(here, there), timeout=3.0)
    assert "is unreachable" in caplog.text and redis_server.url in caplog.text
    health = await asyncio.to_thread(http_health, here)  # alive: do not restart it
    assert health["status"] == "ok" and health["redis"] == "down"
    status, ready = await asyncio.to_thread(http_ready, here)  # but take it out of service
    assert status == 503 and ready["ready"] is False
    assert any("unreachable" in problem for problem in ready["problems"]), ready

    started = time.monotonic()
    assert await here.abroadcast("during") == 1  # this process's clients still get it
    assert (await ann.arecv()).text == "during"
    replies = await ann.achat("keep going while Redis is away")  # history: queued, dropped
    assert replies[-1].type == "end"
    assert await there.backplane.connections_elsewhere("ann") == 0  # fails open
    claim = await there.backplane.claim(ann.session_id or "", "ann", have_local=False)
    assert claim.outcome is ClaimOutcome.UNKNOWN
    assert time.monotonic() - started < 1.0, "something waited for the missing Redis"
    with pytest.raises(TimeoutError):
        await bob.arecv(timeout=0.3)  # fan-out across processes is suspended
    assert here.health()["dropped"] > 0 and here.health()["queued"] > 0
    assert here.health()["unsent"] == 1  # "during" could not reach `there`
    status, ready = await asyncio.to_thread(http_ready, here)
    assert status == 503 and any("dropped" in problem for problem in ready["problems"])

    await asyncio.to_thread(redis_server.start)  # same port, empty
    await eventually(lambda: _up(here, there), timeout=TIMEOUT)
    assert "reachable again" in caplog.text

    async def fanned_out() -> bool:
        await here.abroadcast("after")
        try:
            return (await bob.arecv(timeout=0.2)).text == "after"
        except TimeoutError:
            return False

    await eventually(fanned_out, timeout=TIMEOUT)  # the subscriber came back by itself

    async def counted_again() -> bool:  # this node re-registered ann's connection
        return await there.backplane.connections_elsewhere("ann") == 1

    async def flushed() -> bool:  # what waited for Redis was written
        return bool(here.health()["queued"] == 0)

    async def missed_counted() -> bool:  # `there` knows what it missed of `here`
        return bool(there.health()["missed"] >= 1)

    async def ready_again() -> bool:  # after the window of dropped writes has passed
        return (await asyncio.to_thread(http_ready, here))[0] == 200

    await eventually(counted_again, timeout=TIMEOUT)
    await eventually(flushed, timeout=TIMEOUT)
    await eventually(missed_counted, timeout=TIMEOUT)
    await eventually(ready_again, timeout=DROP_WINDOW + TIMEOUT)
    await ann.aclose()
    await bob.aclose()


async def _down(*servers: nbstream.Server) -> bool:
    return all(server.health()["redis"] == "down" for server in servers)


async def _up(*servers: nbstream.Server) -> bool:
    return all(server.health()["redis"] == "ok" for server in servers)
