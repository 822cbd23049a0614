"""record(): a server's, a client's flow, live, with every frame's payload."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest

import nbstream
from nbstream import Message, Recording, Session
from nbstream.events import BINARY, CLOSE, TEXT
from tests.conftest import ServerFactory, eventually


async def raw_echo(message: Message, session: Session) -> AsyncGenerator[Any, None]:
    """Sends back each frame as it came (text or binary)."""
    yield message.data


async def test_recording_a_server_keeps_every_frame_of_a_chat(
        start_server: ServerFactory) -> None:
    server = await start_server("echo")
    assert not server.events  # nobody listens: the server publishes nothing
    rec = nbstream.record(server)
    assert rec.live and server.events
    client = await nbstream.aconnect(server.url, user="ann")
    await client.achat("hi there")
    await client.aclose()
    await eventually(lambda: any(f.opcode == CLOSE for f in rec.frames), what="the close")
    rec.stop()
    assert not rec.live and not server.events
    frame = rec.frame
    assert list(frame.columns) == ["time", "at", "session", "direction", "opcode", "type",
                                   "size", "payload", "close_code"]
    assert list(frame["type"]) == ["welcome", "chat", "content", "end", None]
    assert list(frame["direction"]) == ["s2c", "c2s", "s2c", "s2c", None]
    assert '"hi there"' in frame["payload"][1] and frame["payload"][2].count("hi there") == 1
    assert frame["close_code"].iloc[-1] == 1000 and (frame["time"].diff().dropna() >= 0).all()
    assert (frame["size"][:4] == frame["payload"][:4].str.len()).all()
    [session] = rec.sessions.itertuples()
    assert (session.session, session.url, session.user, session.subprotocol) == \
        (client.session_id, server.url, "ann", "nbstream.v1")
    assert session.close_code == 1000 and session.frames == 5 and session.opened >= 0


async def test_recording_a_client_starts_with_its_welcome(
        start_server: ServerFactory) -> None:
    server = await start_server("echo")
    client = await nbstream.aconnect(server.url)
    await client.achat("before")
    with nbstream.record(client) as rec:
        await client.achat("during")
    await client.achat("after")
    await client.aclose()
    assert [(f.direction, f.type) for f in rec.frames] == \
        [("s2c", "welcome"), ("c2s", "chat"), ("s2c", "content"), ("s2c", "end")]
    assert rec.frames[0].at == rec.start and client.session_id in rec.info
    assert rec.info[client.session_id or ""].subprotocol == "nbstream.v1"
    assert "during" in str(rec.frames[1].payload)


async def test_binary_and_text_frames_are_kept_byte_for_byte(
        start_server: ServerFactory, tmp_path: Path) -> None:
    server = await start_server(raw_echo, protocol="raw")
    with nbstream.record(server) as rec:
        client = await nbstream.aconnect(server.url, protocol="raw")
        await client.asend(bytes(range(256)))
        assert (await client.arecv(timeout=5)).data == bytes(range(256))
        await client.asend("plain text ✓")
        assert (await client.arecv(timeout=5)).data == "plain text ✓"
        await client.aclose()
        await eventually(lambda: any(f.opcode == CLOSE for f in rec.frames))
    payloads = [(f.direction, f.opcode, f.payload) for f in rec.frames if f.is_data]
    assert payloads == [("c2s", BINARY, bytes(range(256))), ("s2c", BINARY, bytes(range(256))),
                        ("c2s", TEXT, "plain text ✓"), ("s2c", TEXT, "plain text ✓")]
    assert rec.protocol == "raw"
    for suffix in (".parquet", ".jsonl"):
        loaded = Recording.load(rec.save(tmp_path / f"live{suffix}"))
        assert loaded.frames == rec.frames and loaded.info == rec.info


async def test_two_clients_are_two_sessions_and_views_can_follow(
        start_server: ServerFactory) -> None:
    server = await start_server("echo")
    rec = nbstream.record(server)
    followed: list[str] = []
    rec.events.subscribe(lambda event: followed.append(event.kind))
    first, second = await asyncio.gather(nbstream.aconnect(server.url),
                                         nbstream.aconnect(server.url))
    await asyncio.gather(first.achat("one"), second.achat("two"))
    await first.aclose()
    await second.aclose()
    await eventually(lambda: len(rec.info) == 2 and all(
        s.close_code == 1000 for s in rec.info.values()))
    rec.stop()
    assert set(rec.info) == {first.session_id, second.session_id}
    assert followed.count("open") == 2 and followed.count("in") == 2


def test_only_sources_with_an_event_stream_can_be_recorded() -> None:
    with pytest.raises(TypeError, match="Server, a Client or a FaultProxy"):
        nbstream.record("ws://127.0.0.1:1/ws")


def test_a_recording_shows_what_it_is() -> None:
    rec = Recording(source="a.har")
    assert repr(rec) == "<nbstream.Recording 0 session(s), 0 frame(s), 0.00 s, stopped, " \
        "from a.har>"
    assert rec.frame.empty and rec.sessions.empty and len(rec) == 0
    with pytest.raises(KeyError, match="no session 'x'"):
        rec.select("x")


async def test_recording_a_fault_proxy_sees_both_directions_and_its_faults_change_them(
        start_server: ServerFactory) -> None:
    server = await start_server("echo")
    proxy = await nbstream.aproxy(server, seed=1)
    try:
        with nbstream.record(proxy) as rec:
            client = await nbstream.aconnect(proxy.url)
            await client.achat("through the proxy")
            proxy.add("drop", direction="down", match="content")
            replies = await client.achat("its answer is lost on the way")
            assert [m.type for m in replies] == ["end"]
            await client.aclose()
            await eventually(lambda: any(f.opcode == CLOSE for f in rec.frames))
    finally:
        await proxy.astop()
    assert rec.source == f"proxy {proxy.url}"
    [name] = rec.info
    assert name == client.session_id and rec.info[name].subprotocol == "nbstream.v1"
    assert rec.info[name].opened is not None  # the proxy's open names the same session
    kinds = [(f.direction, f.type) for f in rec.frames if f.is_data]
    assert kinds[:4] == [("s2c", "welcome"), ("c2s", "chat"), ("s2c", "content"),
                         ("s2c", "end")]
    assert kinds[4:] == [("c2s", "chat"), ("s2c", "end")]  # what passed the proxy
