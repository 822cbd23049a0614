"""Batching: by size and by age, order kept, nothing stranded at the end of a stream."""

import asyncio
import json
from collections.abc import AsyncIterator

from websockets.asyncio.client import connect

import nbstream
from nbstream.protocol import Message, Session
from tests.conftest import TIMEOUT, ServerFactory, recv_json


async def count_to(message: Message, session: Session) -> AsyncIterator[str]:
    for i in range(int(message.data["text"])):
        yield str(i)


async def test_messages_travel_in_batches_in_order(start_server: ServerFactory) -> None:
    server = await start_server(count_to, batch_max_size=10, batch_max_wait=1.0)
    async with connect(server.url) as ws:
        await ws.send(json.dumps({"type": "chat", "data": {"text": "25"}}))
        frames = []
        texts: list[str] = []
        while True:
            frame = await recv_json(ws)
            frames.append(frame)
            inner = frame["data"]["messages"] if frame["type"] == "batch" else [frame]
            texts += [m["data"].get("text") for m in inner if m["type"] == "content"]
            if inner[-1]["type"] == "end":
                break
    assert texts == [str(i) for i in range(25)]
    assert [f["type"] for f in frames] == ["batch", "batch", "batch"]
    assert [len(f["data"]["messages"]) for f in frames] == [10, 10, 6]  # 5 left + end


async def test_a_partial_batch_leaves_after_max_wait(start_server: ServerFactory) -> None:
    release = asyncio.Event()

    async def slow(message: Message, session: Session) -> AsyncIterator[str]:
        yield "early"
        await release.wait()

    server = await start_server(slow, batch_max_size=10, batch_max_wait=0.05)
    async with connect(server.url) as ws:
        await ws.send(json.dumps({"type": "chat", "data": {"text": "x"}}))
        first = await recv_json(ws, timeout=TIMEOUT)
        release.set()
        assert first["type"] == "content" and first["data"]["text"] == "early"
        assert (await recv_json(ws))["type"] == "end"


async def test_nbstream_client_unpacks_batches(start_server: ServerFactory) -> None:
    server = await start_server(count_to, batch_max_size=8, batch_max_wait=0.01)
    client = await nbstream.aconnect(server.url)
    replies = await client.achat("20", timeout=TIMEOUT)
    assert [m.text for m in replies[:-1]] == [str(i) for i in range(20)]
    assert replies[-1].type == "end"
    await client.aclose()


async def test_pending_batch_is_flushed_before_shutdown_close(
    start_server: ServerFactory,
) -> None:
    server = await start_server(count_to, batch_max_size=100, batch_max_wait=60.0)
    client = await nbstream.aconnect(server.url)
    await server.abroadcast("one")
    await server.abroadcast("two")
    await server.astop(timeout=1.0)
    received = [m.text for m in [await client.arecv(TIMEOUT) for _ in range(3)]]
    assert received[:2] == ["one", "two"]
    await client.aclose()
