"""Resume without loss: abrupt drops, restarts, gaps beyond the window, foreign sessions."""

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect

import nbstream
from nbstream.protocol import Backoff, Message, Session
from tests.conftest import TIMEOUT, ServerFactory, eventually, recv_json

TOKENS = 60
FAST = Backoff(base=0.01, cap=0.05, attempts=50)


async def numbered(message: Message, session: Session) -> AsyncIterator[str]:
    """Streams "0", "1", ... slowly enough to be interrupted mid-way."""
    for i in range(int(message.data.get("n", TOKENS))):
        await asyncio.sleep(0.01)
        yield str(i)


def contents(replies: list[Message]) -> list[str]:
    return [m.text or "" for m in replies if m.type == "content"]


async def test_abrupt_drops_mid_stream_lose_and_duplicate_nothing(
    start_server: ServerFactory,
) -> None:
    server = await start_server(numbered)
    streamed: list[object] = []
    server.events.subscribe(lambda e: streamed.append(e) if e.kind == "out" else None)
    client = await nbstream.aconnect(server.url, reconnect=FAST)
    chat = asyncio.create_task(client.achat("count", timeout=TIMEOUT * 4))
    for cut in range(3):  # cut the TCP connection three times while the reply streams
        await eventually(lambda cut=cut: len(streamed) > 12 * (cut + 1)  # type: ignore[misc]
                         and len(server.connections) == 1)
        assert await server.adisconnect(client.session_id or "", abrupt=True)
    replies = await chat
    assert contents(replies) == [str(i) for i in range(TOKENS)]  # no gap, no duplicate
    assert replies[-1].type == "end"
    assert client.reconnects == 3 and client.recovered is True
    await client.aclose()


async def test_restart_on_the_same_port_keeps_the_sequence(
    start_server: ServerFactory,
) -> None:
    server = await start_server(numbered)
    port = server.port
    client = await nbstream.aconnect(server.url, reconnect=FAST)
    streamed: list[object] = []
    server.events.subscribe(lambda e: streamed.append(e) if e.kind == "out" else None)
    first = asyncio.create_task(client.achat("count", timeout=TIMEOUT * 4))
    await eventually(lambda: len(streamed) > 2)  # the stream is under way
    report = await server.astop(timeout=TIMEOUT)  # drains the stream in flight
    assert report.finished and not report.cut
    assert contents(await first) == [str(i) for i in range(TOKENS)]
    second = asyncio.create_task(client.achat("again", timeout=TIMEOUT * 4, n=5))
    await eventually(lambda: client.core.buffered)  # the chat waits for the server
    await start_server(numbered, port=port)
    assert contents(await second) == [str(i) for i in range(5)]
    assert client.reconnects >= 1
    await client.aclose()


async def test_a_gap_beyond_the_history_is_reported_not_skipped(
    start_server: ServerFactory,
) -> None:
    server = await start_server(numbered, history_max_messages=5)
    slow = Backoff(base=0.3, cap=0.3, random=lambda: 1.0)  # away for 0.3 s: 30 messages
    client = await nbstream.aconnect(server.url, reconnect=slow)
    streamed: list[object] = []
    server.events.subscribe(lambda e: streamed.append(e) if e.kind == "out" else None)
    chat = asyncio.create_task(client.achat("count", timeout=TIMEOUT * 4))
    await eventually(lambda: len(streamed) > 3)  # the stream is under way
    await server.adisconnect(client.session_id or "", abrupt=True)
    with pytest.raises(nbstream.StreamError) as failed:
        await chat  # more than 5 messages went out while the client was away
    assert failed.value.code == "RECOVERY_FAILED"
    assert "fell out of the history" in failed.value.message
    assert client.recovered is False
    await client.aclose()


async def test_an_unknown_session_is_not_recovered(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    async with connect(f"{server.url}?session_id=ghost&last_id=abcd:7",
                       subprotocols=["nbstream.v1"]) as ws:  # type: ignore[list-item]
        welcome = await recv_json(ws)
    assert welcome["type"] == "welcome"
    assert welcome["data"]["recovered"] is False
    assert "no longer has this session" in welcome["data"]["reason"]


async def test_foreign_and_malformed_session_ids_are_refused(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo")
    alice = await nbstream.aconnect(server.url, user="alice", session_id="alice-1")
    with pytest.raises(nbstream.StreamClosed) as foreign:
        await nbstream.aconnect(server.url, user="mallory", session_id="alice-1")
    assert foreign.value.code == 1008 and foreign.value.error is not None
    assert foreign.value.error.code == "UNAUTHORIZED"
    with pytest.raises(nbstream.StreamClosed, match="HTTP 400"):
        await nbstream.aconnect(server.url, session_id="../../etc/passwd")
    assert (await alice.achat("still mine", timeout=TIMEOUT))[-1].type == "end"
    await alice.aclose()


async def test_duplicate_chats_are_answered_once(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    async with connect(server.url) as ws:
        chat = json.dumps({"type": "chat", "id": "same", "data": {"text": "x"}})
        await ws.send(chat)
        await ws.send(chat)
        await ws.send(json.dumps({"type": "chat", "id": "other", "data": {"text": "y"}}))
        frames = [await recv_json(ws) for _ in range(4)]
    assert [f["data"].get("text") for f in frames if f["type"] == "content"] == ["x", "y"]
    assert [f["data"]["reply_to"] for f in frames if f["type"] == "end"] == ["same", "other"]


async def test_sends_while_away_fail_loudly_when_the_buffer_is_full(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo")
    port = server.port
    client = await nbstream.aconnect(server.url, send_buffer=3,
                                     reconnect=Backoff(base=0.5, cap=0.5, attempts=20))
    await server.astop()
    assert (await client.arecv(TIMEOUT)).type == "server_shutdown"
    for i in range(3):  # the first write finds the connection gone; all three wait
        await client.asend("chat", {"text": str(i)})
    with pytest.raises(nbstream.StreamClosed, match="send buffer full"):
        await client.asend("chat", {"text": "one too many"})
    await start_server("echo", port=port)
    texts = {m.text for m in [await client.arecv(TIMEOUT) for _ in range(6)]}
    assert {"0", "1", "2"} <= texts
    await client.aclose()
