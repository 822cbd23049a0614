"""Two server processes on one Redis act as one: fan-out and per-user limits across them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import Counter
from typing import cast

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

import nbstream
from nbstream.backplane.fanout import BEAT_INTERVAL, DEADLINE
from nbstream.backplane.redis import RedisBackplane
from nbstream.protocol import SUBPROTOCOL, CloseCode, ErrorCode, Position
from tests.conftest import TIMEOUT, ServerFactory, recv_json
from tests.conftest import eventually as until
from tests.scaleout.conftest import NodeFactory, eventually
from tests.scaleout.processes import RedisServer
from tests.scaleout.tcpproxy import TcpProxy


async def test_broadcast_and_send_to_user_reach_the_other_process(
    redis_server: RedisServer, start_server: ServerFactory, start_node: NodeFactory,
) -> None:
    remote = await start_node(handler="echo")
    here = await start_server("echo", backplane=redis_server.url)
    near = await nbstream.aconnect(here.url, user="alice", timeout=TIMEOUT)
    far = await nbstream.aconnect(remote.url, user="bob", timeout=TIMEOUT)
    assert (await asyncio.to_thread(remote.health))["redis"] == "ok"

    assert await here.abroadcast("to everyone") == 1  # delivered here; published for there
    assert (await near.arecv()).text == "to everyone"
    received = await far.arecv()
    assert received.text == "to everyone"
    assert Position.parse(received.id) is not None  # part of bob's resumable stream

    await here.asend_to_user("bob", "just bob")
    assert (await far.arecv()).text == "just bob"
    await here.asend_to_user("alice", "just alice")
    assert (await near.arecv()).text == "just alice"
    with pytest.raises(TimeoutError):
        await far.arecv(timeout=0.3)  # alice's message did not go to bob

    replies = await far.achat("still chatting")  # the remote serves its own chats
    assert [m.text for m in replies if m.type == "content"] == ["still chatting"]
    await near.aclose()
    await far.aclose()


async def test_per_user_limit_counts_connections_on_every_process(
    redis_server: RedisServer, start_server: ServerFactory,
) -> None:
    one = await start_server("echo", backplane=redis_server.url, max_connections_per_user=1)
    two = await start_server("echo", backplane=redis_server.url, max_connections_per_user=1)
    first = await nbstream.aconnect(one.url, user="carol", timeout=TIMEOUT)

    async def counted(n: int) -> bool:
        return await two.backplane.connections_elsewhere("carol") == n

    await eventually(lambda: counted(1))
    with pytest.raises(nbstream.StreamClosed) as refused:
        await nbstream.aconnect(two.url, user="carol", reconnect=False)
    assert refused.value.code == CloseCode.TRY_AGAIN_LATER
    assert refused.value.error is not None
    assert refused.value.error.code == ErrorCode.TOO_MANY_CONNECTIONS

    await first.aclose()
    await eventually(lambda: counted(0))
    second = await nbstream.aconnect(two.url, user="carol", timeout=TIMEOUT)
    assert (await second.achat("in"))[0].text == "in"
    await second.aclose()


async def test_a_silent_subscription_is_found_replaced_and_its_losses_counted(
    redis_server: RedisServer, start_server: ServerFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="nbstream.backplane")
    proxy = await TcpProxy([redis_server.port]).start()
    try:
        here = await start_server("echo", backplane=redis_server.url)
        there = await start_server("echo", backplane=proxy.redis_url, metrics=True)
        bob = await nbstream.aconnect(there.url, user="bob", timeout=TIMEOUT)
        await here.abroadcast("before")
        assert (await bob.arecv()).text == "before"

        # A failover behind one address: every connection of `there` goes silent
        # (nothing in, nothing out, no error), while new connections work.
        assert proxy.freeze() >= 2  # at least the subscription and one pooled connection
        frozen_at = time.monotonic()
        published = 0
        arrived: list[str] = []
        while not arrived:
            assert time.monotonic() - frozen_at < 4 * TIMEOUT, "fan-out never came back"
            await here.abroadcast(f"n{published}")
            published += 1
            with contextlib.suppress(TimeoutError):
                arrived.append((await bob.arecv(timeout=0.1)).text or "")
        back_after = time.monotonic() - frozen_at
        redis_timeout = cast(RedisBackplane, there.backplane).timeout  # backplane=a Redis URL
        assert back_after < DEADLINE + BEAT_INTERVAL + 4 * redis_timeout + 2.0
        assert "fan-out subscription" in caplog.text and "is silent" in caplog.text
        lost = int(arrived[0][1:])  # n0 ... n{lost - 1} never reached `there`

        def counted() -> bool:  # at the next heartbeat of `here`
            return bool(there.health()["missed"] == lost)
        await until(counted, what=f"{lost} missed broadcasts counted")
        stats = there.backplane.stats()
        assert stats is not None and stats.reconnects == 1 and stats.up and stats.subscribed
        await bob.aclose()
    finally:
        await proxy.close()


async def test_per_user_limit_holds_exactly_when_a_user_rushes_three_processes(
    start_node: NodeFactory,
) -> None:
    nodes = [await start_node(handler="echo", max_connections_per_user=2) for _ in range(3)]
    admitted = []
    for rush in range(3):  # 20 handshakes of one user at once, spread over the processes
        sockets = [socket.create_connection(("127.0.0.1", nodes[i % 3].port), timeout=TIMEOUT)
                   for i in range(20)]
        async with contextlib.AsyncExitStack() as opened:

            async def attempt(i: int, user: str, sock: socket.socket) -> str:
                ws = await opened.enter_async_context(connect(
                    f"{nodes[i % 3].url}?user={user}", subprotocols=[Subprotocol(SUBPROTOCOL)],
                    sock=sock))
                first = await recv_json(ws)
                outcome: str = (first["type"] if first["type"] == "welcome"
                                else first["data"]["code"])
                return outcome

            outcomes = Counter(await asyncio.gather(*(attempt(i, f"zoe{rush}", sockets[i])
                                                      for i in range(20))))
        assert set(outcomes) == {"welcome", "TOO_MANY_CONNECTIONS"}, outcomes
        admitted.append(outcomes["welcome"])
    assert admitted == [2, 2, 2]
