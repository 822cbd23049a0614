"""Resume on any node, any number of times, behind a load balancer without affinity."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

import nbstream
from nbstream.events import FlowEvent
from nbstream.protocol import SUBPROTOCOL, Backoff, CloseCode, ErrorCode, Position
from tests.conftest import TIMEOUT, ServerFactory, recv_json
from tests.conftest import eventually as until
from tests.scaleout.conftest import NodeFactory, eventually
from tests.scaleout.processes import RedisServer
from tests.scaleout.tcpproxy import TcpProxy

QUICK = Backoff(base=0.01, cap=0.05, attempts=100)
"""Reconnect at once, as a client on a flaky network would, and keep trying."""


@pytest.fixture
async def balancer() -> AsyncIterator[list[TcpProxy]]:
    """Round-robin proxies made by the test; closed afterwards."""
    proxies: list[TcpProxy] = []
    yield proxies
    for proxy in proxies:
        await proxy.close()


class Received:
    """What one client saw of its session's stream."""

    def __init__(self) -> None:
        self.positions: list[Position] = []
        self.texts: Counter[str] = Counter()
        self.ends: Counter[str] = Counter()

    def __call__(self, event: FlowEvent) -> None:
        message = event.message
        if event.kind != "in" or message is None:
            return
        position = Position.parse(message.id)
        if position is None:  # control messages: welcome, ping
            return
        self.positions.append(position)
        if message.type == "content":
            self.texts[message.text or ""] += 1
        elif message.type == "end":
            self.ends[message.data.get("reply_to") or ""] += 1


async def test_three_nodes_round_robin_100_drops_lose_and_repeat_nothing(
    start_node: NodeFactory, redis_server: RedisServer, start_server: ServerFactory,
    balancer: list[TcpProxy],
) -> None:
    nodes = [await start_node(handler="echo", session_ttl=60) for _ in range(3)]
    pusher = await start_server("echo", backplane=redis_server.url)  # a 4th node, not behind it
    proxy = await TcpProxy([node.port for node in nodes]).start()
    balancer.append(proxy)
    client = await nbstream.aconnect(proxy.url, user="alice", reconnect=QUICK, timeout=TIMEOUT)
    seen = Received()
    client.events.subscribe(seen)
    rng = random.Random(18)
    failures: list[nbstream.StreamError] = []
    chat_ids: list[str] = []
    for i in range(100):
        def resumed(done: int = i) -> bool:
            return client.reconnects == done

        await until(resumed, what="the client resumed")
        chat = asyncio.create_task(client.achat(f"chat {i}", timeout=3 * TIMEOUT))
        await asyncio.sleep(rng.uniform(0, 0.004))  # before, during or after the reply
        assert proxy.drop() == 1
        await pusher.asend_to_user("alice", f"push {i}")  # while the client is away
        try:
            replies = await chat
            chat_ids.append(replies[-1].data["reply_to"])
        except nbstream.StreamError as error:
            failures.append(error)

    def arrived() -> bool:
        return all(seen.texts[f"push {i}"] for i in range(100))

    try:
        await until(arrived, what="every push arrived")
    finally:
        await client.aclose()
    assert failures == []
    assert proxy.picks[:7] == [0, 1, 2, 0, 1, 2, 0] and len(proxy.picks) == 101
    assert client.reconnects == 100
    epochs = {p.epoch for p in seen.positions}
    offsets = [p.offset for p in seen.positions]
    assert len(epochs) == 1, epochs  # one session history all along
    assert offsets == list(range(300))  # 100 x (content, end) + 100 pushes: no gap, no repeat
    assert [seen.texts[f"push {i}"] for i in range(100)] == [1] * 100
    assert all(seen.texts[f"chat {i}"] >= 1 for i in range(100))
    assert sorted(seen.ends.values()) == [1] * 100 and set(seen.ends) == set(chat_ids)
    figures = [await asyncio.to_thread(node.metrics) for node in nodes]
    assert sum(f["nbstream_backplane_handoffs_total"] for f in figures) == 100
    assert sum(f["nbstream_backplane_handoff_timeouts_total"] for f in figures) == 0


async def resume(url: str, user: str, session: str, last: str) -> tuple[dict[str, Any], int]:
    """One raw resume attempt: the first envelope, and the close code (None if open)."""
    address = f"{url}?user={user}&session_id={session}&last_id={last}"
    async with connect(address, subprotocols=[Subprotocol(SUBPROTOCOL)]) as ws:
        first = await recv_json(ws)
        try:
            await asyncio.wait_for(ws.wait_closed(), 0.5)
        except TimeoutError:
            return first, 0
        return first, ws.close_code or 0


async def test_a_refused_resume_changes_nothing_anywhere(
    start_node: NodeFactory, redis_client: Any,
) -> None:
    home = await start_node(handler="agent", session_ttl=2)
    other = await start_node(handler="agent", session_ttl=2)
    alice = await nbstream.aconnect(home.url, user="alice", timeout=TIMEOUT)
    await alice.achat("hello")
    session = alice.session_id
    assert session is not None
    meta = f"nbstream:s:{session}:meta"

    async def stored() -> bool:
        return await redis_client.hget(meta, "owner") is not None

    await eventually(stored)
    owner = await redis_client.hget(meta, "owner")
    last = alice.core.last_id
    assert last is not None
    for _ in range(20):
        first, code = await resume(other.url, "mallory", session, last)
        assert code == CloseCode.POLICY_VIOLATION
        assert first["data"]["code"] == ErrorCode.UNAUTHORIZED
    assert await redis_client.hget(meta, "owner") == owner  # still alice's node
    assert (await asyncio.to_thread(other.health))["sessions"] == 0  # nothing kept there
    replies = await alice.achat(" ".join(f"w{i}" for i in range(30)))
    assert replies[-1].type == "end"

    async def history_complete() -> bool:  # home still writes alice's history
        return int(await redis_client.hget(meta, "next") or 0) > Position.parse(
            replies[-1].id).offset  # type: ignore[union-attr]

    await eventually(history_complete)
    await alice.aclose()


async def test_a_client_dropped_before_any_stream_message_gets_no_recovery_failure(
    start_server: ServerFactory, balancer: list[TcpProxy],
) -> None:
    server = await start_server("echo")
    proxy = await TcpProxy([server.port]).start()
    balancer.append(proxy)
    client = await nbstream.aconnect(proxy.url, user="bea", reconnect=QUICK, timeout=TIMEOUT)
    assert proxy.drop() == 1  # before the first stream message

    await until(lambda: client.reconnects == 1, what="reconnected")
    replies = await client.achat("first")  # nothing was missed: nothing failed
    assert [m.type for m in replies] == ["content", "end"]
    await client.aclose()


async def test_two_nodes_a_b_a_resume_reads_the_shared_state(
    start_node: NodeFactory, balancer: list[TcpProxy],
) -> None:
    a = await start_node(handler="echo")
    b = await start_node(handler="echo")
    proxy = await TcpProxy([a.port, b.port]).start()
    balancer.append(proxy)
    client = await nbstream.aconnect(proxy.url, user="carl", reconnect=QUICK, timeout=TIMEOUT)
    for i in range(10):
        replies = await client.achat(f"round {i}")
        assert [m.text for m in replies if m.type == "content"] == [f"round {i}"]
        proxy.drop()
    assert proxy.picks[:4] == [0, 1, 0, 1]
    assert client.recovered is True
    await client.aclose()
