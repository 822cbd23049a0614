"""Hostile and careless clients, with short settings: after each abuse the server's
connection and session counts, its memory and a fresh client's success say it held.

Each case is one of issue 16's findings, reproduced over real sockets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import nbstream
from tests.conftest import TIMEOUT, ServerFactory, eventually

CHAT = json.dumps({"type": "chat", "data": {"text": "hi"}})


async def big_reply(message: nbstream.Message, session: nbstream.Session
                    ) -> AsyncIterator[str]:
    for _ in range(20):
        yield "x" * 10_000


async def flood_without_reading(url: str, frames: int) -> int:
    """Write up to ``frames`` chats and read nothing; returns how many went out."""
    sent = 0
    async with connect(url, max_queue=1, close_timeout=0.5) as ws:
        try:
            async with asyncio.timeout(TIMEOUT * 2):
                for sent in range(1, frames + 1):  # noqa: B007
                    await ws.send(CHAT)
                await ws.wait_closed()
        except (ConnectionClosed, TimeoutError):
            pass
    return sent


async def test_a_dropped_flooder_leaves_no_zombie_and_its_user_comes_back(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    server = await start_server("agent", max_connections_per_user=1, send_timeout=1.0,
                                session_ttl=1.0)
    await flood_without_reading(server.url + "?user=mallory", 100_000)
    # The connection slot, the user's slot and (after session_ttl) the session go.
    await eventually(lambda: server.health()["connections"] == 0, timeout=TIMEOUT)
    await eventually(lambda: server.health()["sessions"] == 0, timeout=TIMEOUT)
    client = await nbstream.aconnect(server.url, user="mallory", reconnect=False)
    assert (await client.achat("2+2", timeout=TIMEOUT))[-1].type == "end"
    await client.aclose()
    started = time.monotonic()
    report = await server.astop(timeout=2.0)
    assert time.monotonic() - started < 3.0, report
    assert "did not close in time" not in caplog.text
    assert "was destroyed but it is pending" not in caplog.text


async def test_detached_sessions_stay_within_their_bounds(
    start_server: ServerFactory,
) -> None:
    """400 connections that each get a 200 KB reply and reset: the detached sessions
    and their history bytes stay within max_sessions and max_detached_bytes."""
    limit_bytes = 2_000_000
    server = await start_server(big_reply, max_sessions=50,
                                max_detached_bytes=limit_bytes, max_connections=5,
                                max_sessions_per_user=None, session_ttl=60.0)
    for i in range(400):
        ws = await connect(server.url, max_size=None)
        await ws.send(CHAT)
        await asyncio.wait_for(ws.recv(), TIMEOUT)  # the reply is under way
        ws.transport.abort()  # reset: the session waits for a resume
        await eventually(lambda: server.health()["connections"] == 0)
        if i % 50 == 0:
            held = sum(info.history_bytes for info in server.connections.values())
            assert held == 0
    health = server.health()
    assert health["sessions"] <= 50
    assert health["detached_sessions"] <= 50
    assert health["evicted_sessions"] > 0
    assert health["detached_bytes"] <= limit_bytes
    fresh = await nbstream.aconnect(server.url, reconnect=False)
    assert (await fresh.achat("still", timeout=TIMEOUT))[-1].type == "end"
    await fresh.aclose()


async def test_one_user_cannot_hold_more_than_its_share_of_sessions(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo", max_sessions_per_user=3, session_ttl=60.0)
    for _ in range(10):
        ws = await connect(server.url + "?user=greedy")
        await ws.send(CHAT)
        await asyncio.wait_for(ws.recv(), TIMEOUT)
        ws.transport.abort()
        await eventually(lambda: server.health()["connections"] == 0)
    assert server.health()["sessions"] == 3
    other = await nbstream.aconnect(server.url, user="modest", reconnect=False)
    assert (await other.achat("hello", timeout=TIMEOUT))[0].text == "hello"
    await other.aclose()


async def test_a_chat_whose_text_is_not_a_string_fails_at_once(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo")
    client = await nbstream.aconnect(server.url)
    with pytest.raises(TypeError, match="chat\\(text\\) takes a str, got int"):
        await client.achat(123)  # type: ignore[arg-type]
    # Sent anyway, raw: the server's error names the message it answers.
    sent = await client.asend("chat", {"text": 123})
    reply = await client.arecv(TIMEOUT)
    assert reply.error is not None and reply.error.code == "INVALID_MESSAGE"
    assert reply.error.details["reply_to"] == sent.id
    started = time.monotonic()
    with pytest.raises(nbstream.StreamError, match="INVALID_MESSAGE"):
        await client.arequest({"type": "chat", "id": "c-42", "data": {"text": None}},
                              timeout=TIMEOUT)
    assert time.monotonic() - started < 1.0  # the error ended the request at once
    await client.aclose()


async def test_after_giving_up_the_client_reports_the_servers_last_close(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo")
    client = await nbstream.aconnect(
        server.url, reconnect=nbstream.protocol.Backoff(base=0.01, cap=0.02, attempts=2))
    await server.astop()
    with pytest.raises(nbstream.StreamClosed) as closed:
        for _ in range(5):
            await client.arecv(TIMEOUT)
    assert closed.value.code == 1001
    assert "server shutdown" in closed.value.reason
    assert "gave up reconnecting" in closed.value.reason
