"""Prove it, WebSocket level: message faults measured against real servers and clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

import nbstream
from nbstream.events import FlowEvent
from nbstream.protocol import Message, Session
from tests.conftest import TIMEOUT, ServerFactory, eventually
from tests.faults.conftest import ProxyFactory, contents, numbered

BIG = "b" * 65_536


async def flood(message: Message, session: Session) -> AsyncIterator[str]:
    for _ in range(400):
        yield BIG


def close_codes(events: list[FlowEvent]) -> list[int]:
    return [e.detail["code"] for e in events if e.kind == "close" and e.detail]


async def test_a_stalled_downstream_gets_a_flooding_client_dropped_within_bounds(
        start_proxy: ProxyFactory, start_server: ServerFactory) -> None:
    queue_bytes = 256 * 1024
    server = await start_server(flood, send_timeout=1.0, max_queue_bytes=queue_bytes,
                                close_timeout=0.5)
    proxy = await start_proxy(server)
    client = await nbstream.aconnect(proxy.url, reconnect=False)
    seen: list[FlowEvent] = []
    server.events.subscribe(seen.append)
    proxy.add("stall")  # downward: the client hears nothing, its chat still goes up
    await client.asend("chat", {"text": "go"})
    peak, deadline = 0, time.monotonic() + TIMEOUT * 3
    while not close_codes(seen) and time.monotonic() < deadline:
        peak = max([peak, *(info.queued_bytes for info in server.connections.values())])
        await asyncio.sleep(0.005)
    assert close_codes(seen) == [4002]  # the slow-consumer drop
    frame = len(Message("content", {"text": BIG}).to_json())
    bound = queue_bytes + 32 * 1024 + frame  # docs/reliability.md: queue + write_limit + frame
    assert 0 < peak <= bound, (peak, bound)
    proxy.cut()  # the server is gone; close the client's side at once
    await client.aclose()


async def test_a_corrupted_chat_gets_the_servers_protocol_error(
        start_proxy: ProxyFactory, start_server: ServerFactory) -> None:
    server = await start_server()
    proxy = await start_proxy(server)
    seen: list[FlowEvent] = []
    server.events.subscribe(seen.append)
    client = await nbstream.aconnect(proxy.url, reconnect=False)
    proxy.add("corrupt", direction="up", match="chat")
    with pytest.raises(nbstream.StreamClosed) as closed:
        await client.achat("hello", timeout=TIMEOUT)
    assert closed.value.code == 1007  # invalid UTF-8: the server fails the connection
    await eventually(lambda: close_codes(seen) == [1007])
    await client.aclose()


async def test_a_corrupted_reply_gets_the_clients_protocol_error(
        start_proxy: ProxyFactory, start_server: ServerFactory) -> None:
    proxy = await start_proxy(await start_server())
    proxy.add("corrupt", match="content")
    async with connect(proxy.url) as ws:
        await ws.send(json.dumps({"type": "chat", "data": {"text": "hello"}}))
        with pytest.raises(ConnectionClosedError) as closed:
            for _ in range(10):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert closed.value.sent is not None and closed.value.sent.code == 1007


async def test_a_dropped_end_becomes_the_clients_timeout_not_a_hang(
        start_proxy: ProxyFactory, start_server: ServerFactory) -> None:
    proxy = await start_proxy(await start_server())
    client = await nbstream.aconnect(proxy.url)
    proxy.add("drop", match="end", times=1)
    started = time.perf_counter()
    with pytest.raises(TimeoutError, match="no end for chat"):
        await client.achat("hello", timeout=0.5)
    assert 0.45 <= time.perf_counter() - started <= 2.0
    await client.aclose()


async def test_a_duplicated_chat_is_answered_once(start_proxy: ProxyFactory,
                                                  start_server: ServerFactory) -> None:
    server = await start_server()
    proxy = await start_proxy(server)
    client = await nbstream.aconnect(proxy.url)
    proxy.add("duplicate", direction="up", match="chat", times=1)
    assert contents(await client.achat("once")) == ["once"]
    await eventually(lambda: next(iter(server.connections.values())).messages_in == 2)
    assert contents(await client.achat("next")) == ["next"]  # nothing answered twice
    doubled = proxy.events.to_frame("fault")
    assert list(doubled["fault"]) == ["duplicate"] and list(doubled["type"]) == ["chat"]
    await client.aclose()


async def test_a_duplicated_reply_arrives_twice(start_proxy: ProxyFactory,
                                                start_server: ServerFactory) -> None:
    proxy = await start_proxy(await start_server())
    proxy.add("duplicate", match="content")
    async with connect(proxy.url) as ws:
        await ws.send(json.dumps({"type": "chat", "data": {"text": "hi"}}))
        types = [json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"]
                 for _ in range(3)]
    assert types == ["content", "content", "end"]


async def test_delay_holds_one_message_ms_later(start_proxy: ProxyFactory,
                                                start_server: ServerFactory) -> None:
    proxy = await start_proxy(await start_server())
    client = await nbstream.aconnect(proxy.url)
    arrived: dict[str, float] = {}

    def arrival(e: FlowEvent) -> None:
        if e.kind == "in" and e.message is not None:
            arrived.setdefault(str(e.message.type), time.monotonic())

    client.events.subscribe(arrival)
    proxy.add("delay", ms=300, match="end")
    await client.achat("hello")
    assert 0.28 <= arrived["end"] - arrived["content"] <= 1.0
    await client.aclose()


async def test_reorder_swaps_a_message_with_the_next(start_proxy: ProxyFactory,
                                                     start_server: ServerFactory) -> None:
    proxy = await start_proxy(await start_server(numbered))
    client = await nbstream.aconnect(proxy.url)
    proxy.add("reorder", match="content", times=1)
    assert contents(await client.achat("count", n=5)) == ["1", "0", "2", "3", "4"]
    await client.aclose()


async def test_an_upward_stall_holds_chats_while_the_server_still_gets_through(
        start_proxy: ProxyFactory, start_server: ServerFactory) -> None:
    server = await start_server()
    proxy = await start_proxy(server)
    client = await nbstream.aconnect(proxy.url)
    stall = proxy.add("stall", direction="up")
    await client.asend("chat", {"text": "held"})
    assert await server.abroadcast("still flowing down") == 1
    assert (await client.arecv(timeout=TIMEOUT)).text == "still flowing down"
    assert next(iter(server.connections.values())).messages_in == 0  # the chat is held
    stall.remove()
    assert (await client.arecv(timeout=TIMEOUT)).text == "held"
    await client.aclose()


async def test_a_seed_makes_the_same_choices_over_real_sockets(
        start_proxy: ProxyFactory, start_server: ServerFactory) -> None:
    server = await start_server(numbered)

    async def survivors(seed: int) -> list[str]:
        proxy = await start_proxy(server, seed=seed)
        proxy.add("drop", match="content", probability=0.5)
        client = await nbstream.aconnect(proxy.url)
        got = contents(await client.achat("count", n=40))
        await client.aclose()
        return got

    first = await survivors(11)
    assert 5 < len(first) < 35
    assert await survivors(11) == first
    assert await survivors(12) != first
