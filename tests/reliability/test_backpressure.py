"""Slow consumers: a client that stops reading is dropped (4002) within a bounded time,
the server's buffers for it stay bounded, and the other clients do not notice."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import connect

import nbstream
from nbstream.protocol import Message, Session
from tests.conftest import TIMEOUT, ServerFactory, eventually

CLIENTS = 50
CHATS = 20
BIG = "b" * 65_536
SEND_TIMEOUT = 1.0
QUEUE_BYTES = 256 * 1024
WRITE_LIMIT = 32 * 1024  # websockets' default high-water mark of the write buffer
FRAME = len(BIG) + 200
BOUND_PER_CONNECTION = QUEUE_BYTES + WRITE_LIMIT + FRAME
"""The stated bound: what the server buffers for one connection, however slow it is."""


async def flood_or_echo(message: Message, session: Session) -> AsyncIterator[str]:
    if message.data["text"] == "flood":
        for _ in range(400):  # 26 MB: far more than any socket buffer holds
            yield BIG
    else:
        yield message.data["text"]


async def chatter(url: str, latencies: list[float]) -> None:
    client = await nbstream.aconnect(url)
    for i in range(CHATS):
        started = time.perf_counter()
        await client.achat(f"hello {i}", timeout=TIMEOUT)
        latencies.append(time.perf_counter() - started)
    await client.aclose()


async def latencies_of_chatters(url: str) -> tuple[float, float]:
    """The median and p99 of CLIENTS x CHATS chat round trips (seconds)."""
    latencies: list[float] = []
    await asyncio.gather(*(chatter(url, latencies) for _ in range(CLIENTS)))
    latencies.sort()
    return latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]


def buffered_bytes(server: nbstream.Server) -> list[int]:
    """What the server holds for each connection: its outbox plus the socket's buffer."""
    return [info.queued_bytes for info in server.connections.values()]


async def test_a_client_that_stops_reading_is_dropped_and_hurts_no_one(
    start_server: ServerFactory,
) -> None:
    server = await start_server(flood_or_echo, send_timeout=SEND_TIMEOUT, metrics=True,
                                max_queue_bytes=QUEUE_BYTES, max_connections_per_user=None)
    baseline = await latencies_of_chatters(server.url)

    closes: list[tuple[float, dict[str, Any]]] = []  # a close's detail: its code and reason
    server.events.subscribe(lambda e: closes.append((time.monotonic(), e.detail or {}))
                            if e.kind == "close" else None)
    peak = 0
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max([peak, *buffered_bytes(server)])
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    stuck = await connect(server.url, max_queue=1, max_size=None)  # and never reads
    flood_started = time.monotonic()
    await stuck.send(json.dumps({"type": "chat", "data": {"text": "flood"}}))
    with_stuck = await latencies_of_chatters(server.url)
    async with asyncio.timeout(TIMEOUT * 2):
        while not any(d.get("code") == 4002 for _, d in closes):
            await asyncio.sleep(0.01)
    sampling = False
    await sampler
    dropped_at = next(t for t, d in closes if d.get("code") == 4002)
    stuck.transport.abort()
    baseline_again = await latencies_of_chatters(server.url)

    assert dropped_at - flood_started < SEND_TIMEOUT + TIMEOUT  # bounded time
    assert server.metrics is not None
    assert server.metrics.slow_consumers._value.get() == 1
    assert peak <= BOUND_PER_CONNECTION, (peak, BOUND_PER_CONNECTION)
    # Nobody waited behind the stuck socket: that would cost them send_timeout (1 s).
    # The typical chat is as fast as without it; the tail stays far below that second
    # (a p99 of 1,000 round trips on a shared 2-core machine moves with any hiccup).
    assert with_stuck[0] <= 2 * max(baseline[0], baseline_again[0]), (
        baseline, with_stuck, baseline_again)
    assert with_stuck[1] < SEND_TIMEOUT / 4, (baseline, with_stuck, baseline_again)


async def test_broadcast_never_waits_for_a_stuck_client(start_server: ServerFactory) -> None:
    server = await start_server(flood_or_echo, send_timeout=60.0, max_queue_bytes=QUEUE_BYTES)
    stuck = await connect(server.url, max_queue=1, max_size=None)
    await stuck.send(json.dumps({"type": "chat", "data": {"text": "flood"}}))
    await eventually(lambda: any(info.queued_bytes > QUEUE_BYTES // 2
                                 for info in server.connections.values()))  # it is stuck
    healthy = await nbstream.aconnect(server.url)
    started = time.perf_counter()
    for i in range(20):
        await server.abroadcast(f"news {i}")
    elapsed = time.perf_counter() - started
    texts = [(await healthy.arecv(TIMEOUT)).text for _ in range(20)]
    assert texts == [f"news {i}" for i in range(20)]
    assert elapsed < 0.5
    await healthy.aclose()
    stuck.transport.abort()


async def test_a_fast_handler_is_paced_to_its_client_not_dropped(
    start_server: ServerFactory,
) -> None:
    async def firehose(message: Message, session: Session) -> AsyncIterator[str]:
        for i in range(3000):  # 12 MB as fast as the loop goes: 48x max_queue_bytes
            yield f"{i:04d}" + "f" * 4096

    server = await start_server(firehose, max_queue_bytes=QUEUE_BYTES, batch_max_size=16)
    client = await nbstream.aconnect(server.url)
    replies = await client.achat("go", timeout=TIMEOUT * 4)
    assert [(m.text or "")[:4] for m in replies[:-1]] == [f"{i:04d}" for i in range(3000)]
    assert client.reconnects == 0
    await client.aclose()
