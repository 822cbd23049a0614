"""Two server processes on one Redis act as one: fan-out and per-user limits across them."""

from __future__ import annotations

import asyncio

import pytest

import nbstream
from nbstream.protocol import CloseCode, ErrorCode, Position
from tests.conftest import TIMEOUT, ServerFactory
from tests.scaleout.conftest import NodeFactory, eventually
from tests.scaleout.processes import RedisServer


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
