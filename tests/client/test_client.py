"""The client library: sync and async twins, timeouts, iteration, closing."""

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

import nbstream
from tests.conftest import TIMEOUT, ServerFactory, eventually


def test_sync_api_from_a_plain_script() -> None:
    """No running loop: server and client share nbstream's background thread."""
    with nbstream.serve(nbstream.Agent(token_delay=0)) as server:
        assert server._loop is not None and server._loop.is_running()
        assert threading.current_thread() is threading.main_thread()
        with nbstream.connect(server.url, user="script") as client:
            replies = client.chat("what is 6*7?", timeout=TIMEOUT)
            types = [m.type for m in replies]
            assert types[:2] == ["tool_use", "tool_result"] and types[-1] == "end"
            assert replies[1].data["output"] == 42
            assert "42" in "".join(m.text or "" for m in replies if m.type == "content")
            sent = client.send("chat", {"text": "raw"})
            first = client.recv(timeout=TIMEOUT)
            assert first.type == "content"
            for message in client:  # iteration: every message until we stop
                if message.type == "end":
                    break
            assert message.data["reply_to"] == sent.id
    assert not server.running


async def test_receive_times_out_with_a_clear_message(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    client = await nbstream.aconnect(server.url)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError, match=r"no message .* within 0\.1 s"):
        await client.arecv(timeout=0.1)
    assert 0.1 <= loop.time() - started < 0.1 + nbstream.client.IDLE_CHECK
    await asyncio.sleep(0)  # no cancellation is left over for the caller
    assert (await client.achat("still here", timeout=TIMEOUT))[-1].type == "end"
    await client.aclose()
    await client.aclose()  # closing twice is safe


async def test_async_iteration_ends_when_the_server_closes(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    client = await nbstream.aconnect(server.url, reconnect=False)
    await client.asend("chat", {"text": "a"})
    assert (await client.arecv(TIMEOUT)).type == "content"
    await server.astop(timeout=1.0)
    types = [m.type async for m in client]
    assert types == ["end", "server_shutdown"]
    with pytest.raises(nbstream.StreamClosed, match="1001"):
        await client.arecv(TIMEOUT)
    assert client.closed is not None and client.closed.code == 1001


async def test_chat_with_seed_style_content_and_session_in_path(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo")
    client = await nbstream.aconnect(server.url + "/my-session")
    assert client.session_id == "my-session"
    assert [m.text for m in await client.achat("hola", timeout=TIMEOUT)] == ["hola", None]
    await client.aclose()


async def test_server_on_its_own_thread_serves_a_client_on_this_loop() -> None:
    server = await nbstream.aserve("echo", thread=True)
    assert server._loop is not asyncio.get_running_loop()
    client = await nbstream.aconnect(server.url)
    assert (await client.achat("x", timeout=TIMEOUT))[0].text == "x"
    assert await server.abroadcast("everyone") == 1
    assert (await client.arecv(TIMEOUT)).text == "everyone"
    await client.aclose()
    await eventually(lambda: server.health()["connections"] == 0)
    report = await server.astop()
    assert report.closed == 0  # the client had closed: nothing was left to close


async def test_handshake_refusal_names_the_http_status(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    with pytest.raises(nbstream.StreamClosed, match="HTTP 404"):
        await nbstream.aconnect(f"ws://127.0.0.1:{server.port}/nowhere")


async def test_chats_after_idle_pauses_never_wait_on_the_idle_reader(
    start_server: ServerFactory,
) -> None:
    """Regression: a receive that stopped the idle reader could find a new one holding
    the socket (the watchdog fired in between) and wait until its timeout."""
    server = await start_server("echo", max_connections_per_user=None)
    clients = [await nbstream.aconnect(server.url) for _ in range(100)]
    for _ in range(4):
        await asyncio.sleep(nbstream.client.IDLE_CHECK * 1.5)  # every idle reader starts
        replies = await asyncio.gather(*(c.achat("hi", timeout=2.0) for c in clients))
        assert [r[-1].type for r in replies] == ["end"] * len(clients)
    await asyncio.gather(*(c.aclose() for c in clients))


async def _stall(message: nbstream.Message, session: object) -> AsyncIterator[dict[str, Any]]:
    if message.data["text"] == "stall":
        await asyncio.sleep(TIMEOUT)
    yield {"type": "content", "data": {"text": "ok"}}


async def test_chat_timeout_then_outer_cancel_and_concurrent_deadlines(
    start_server: ServerFactory,
) -> None:
    server = await start_server(_stall)
    client = await nbstream.aconnect(server.url)
    waiter = asyncio.create_task(client.arecv(timeout=30.0))  # a long deadline meanwhile
    with pytest.raises(TimeoutError, match=r"no end for chat .* within 0\.3 s"):
        await client.achat("stall", timeout=0.3)
    assert not waiter.done()
    waiter.cancel()  # someone else's cancellation stays a cancellation
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert client._watchdog.deadlines == {}
    slow = asyncio.create_task(client.achat("stall", timeout=30.0))
    await asyncio.sleep(0.1)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
