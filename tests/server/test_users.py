"""Per-user pools: the limit refuses with 1013, send_to_user reaches all, concurrently."""

import asyncio
import time

import pytest
from websockets.asyncio.client import connect

import nbstream
from tests.conftest import TIMEOUT, ServerFactory


async def test_per_user_limit_raises_naming_code_and_close_code(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo", max_connections_per_user=2)
    first = await nbstream.aconnect(server.url, user="alice")
    second = await nbstream.aconnect(server.url, user="alice")
    with pytest.raises(nbstream.StreamClosed) as refused:
        await nbstream.aconnect(server.url, user="alice")
    assert refused.value.code == 1013
    assert refused.value.error is not None
    assert refused.value.error.code == "TOO_MANY_CONNECTIONS"
    assert "TOO_MANY_CONNECTIONS" in str(refused.value) and "1013" in str(refused.value)
    bob = await nbstream.aconnect(server.url, user="bob")  # other users are unaffected
    for client in (first, second, bob):
        await client.aclose()


async def test_send_to_user_reaches_every_connection_of_that_user_only(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo")
    alices = [await nbstream.aconnect(server.url, user="alice") for _ in range(3)]
    bob = await nbstream.aconnect(server.url, user="bob")
    assert await server.asend_to_user("alice", {"type": "content", "data": {"text": "hi"}}) == 3
    for client in alices:
        assert (await client.arecv(TIMEOUT)).text == "hi"
    with pytest.raises(TimeoutError):
        await bob.arecv(0.2)
    for client in [*alices, bob]:
        await client.aclose()


async def test_one_stuck_connection_does_not_hold_the_others(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo", send_timeout=0.5, max_message_bytes=4 * 2**20)
    # A raw client that never reads: once its socket buffers are full, sends to it block.
    stuck = await connect(server.url + "?user=alice", max_queue=1, max_size=None)
    healthy = await nbstream.aconnect(server.url, user="alice")
    big = "z" * 2**20
    for _ in range(40):  # fill the stuck client's buffers; the healthy one drains
        await server.asend_to_user("alice", big)
        assert len((await healthy.arecv(TIMEOUT)).text or "") == 2**20
    started = time.monotonic()
    delivered = await server.asend_to_user("alice", "small")
    elapsed = time.monotonic() - started
    assert delivered == 1
    assert (await healthy.arecv(TIMEOUT)).text == "small"
    assert elapsed < 0.5 + TIMEOUT / 5
    await healthy.aclose()
    stuck.transport.abort()
    await asyncio.sleep(0)
