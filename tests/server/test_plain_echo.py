"""``serve("echo", protocol=...)`` for json, text and raw over real sockets: frames come
back as they went, and the lifecycle, limits and graceful shutdown hold as for nbstream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import nbstream
from nbstream.protocol import Message, Session
from tests.conftest import TIMEOUT, ServerFactory, eventually

PLAIN = ["json", "text", "raw"]


async def recv(ws: Any) -> str | bytes:
    frame: str | bytes = await asyncio.wait_for(ws.recv(), TIMEOUT)
    return frame


@pytest.mark.parametrize("protocol", ["text", "raw"])
async def test_echo_sends_every_frame_back_byte_for_byte(start_server: ServerFactory,
                                                         protocol: str) -> None:
    server = await start_server("echo", protocol=protocol)
    frames: list[Any] = ["héllo {not json", "", b"\x00\xff\x10", b"", "x" * 200_000,
                         bytes(range(256)) * 300, '{"type": "chat",  "data": 1}']
    async with connect(server.url, max_size=None) as ws:
        for frame in frames:
            await ws.send(frame)
            assert await recv(ws) == frame
        await ws.send(["frag", "mented ", "téxt"])  # one message in three frames
        assert await recv(ws) == "fragmented téxt"
        await ws.send([b"\x01", b"", b"\x02\x03"])
        assert await recv(ws) == b"\x01\x02\x03"


async def test_json_echo_sends_each_value_back_as_json(start_server: ServerFactory) -> None:
    server = await start_server("echo", protocol="json")
    async with connect(server.url) as ws:
        for value in ({"type": "quote", "price": 1.5}, [1, "two", None], "a string", 42,
                      {"nested": {"deep": [True, False]}}):
            await ws.send(json.dumps(value, indent=1))
            assert json.loads(await recv(ws)) == value
        await ws.send("not json {")  # arrives as type "text": goes back as it came
        assert await recv(ws) == "not json {"
        await ws.send(b"\x00\x01")
        assert await recv(ws) == b"\x00\x01"
        await ws.send(['{"a":', ' [1, 2]}'])
        assert json.loads(await recv(ws)) == {"a": [1, 2]}


@pytest.mark.parametrize("protocol", PLAIN)
async def test_the_nbstream_client_speaks_each_protocol(start_server: ServerFactory,
                                                        protocol: str) -> None:
    server = await start_server("echo", protocol=protocol)
    client = await nbstream.aconnect(server.url, protocol=protocol)
    assert client.subprotocol is None and client.welcome is None
    value: Any = {"type": "hello", "n": 1} if protocol == "json" else "hello"
    [reply] = await client.arequest(value, timeout=TIMEOUT)
    assert reply.data == value and reply.type == ("hello" if protocol == "json" else "text")
    [binary] = await client.arequest(b"\x00\x01", timeout=TIMEOUT)
    assert (binary.type, binary.data) == ("binary", b"\x00\x01")
    with pytest.raises(TypeError, match="send one value"):
        await client.asend("chat", {"text": "the nbstream form"})
    await client.aclose()


@pytest.mark.parametrize("protocol", PLAIN)
async def test_open_registers_and_close_unregisters(start_server: ServerFactory,
                                                    protocol: str) -> None:
    server = await start_server("echo", protocol=protocol)
    seen: list[tuple[str, Any]] = []
    server.events.subscribe(lambda e: seen.append((e.kind, e.detail))
                            if e.kind in ("open", "close") else None)
    async with connect(server.url) as ws:
        await eventually(lambda: server.health()["connections"] == 1)
        await ws.send("ping?")
        await recv(ws)
        assert len(server.connections) == 1
    await eventually(lambda: server.health()["connections"] == 0, what="unregistered")
    await eventually(lambda: server.health()["sessions"] == 0, what="session ended")
    assert [kind for kind, _ in seen] == ["open", "close"]
    assert seen[1][1] == {"code": 1000, "reason": ""}


async def fails_on_boom(message: Message, session: Session) -> AsyncIterator[Any]:
    if message.data == "boom" or message.type == "boom":
        raise RuntimeError("the handler broke")
    yield message


@pytest.mark.parametrize("protocol", PLAIN)
async def test_a_failing_handler_closes_with_1011_and_no_internals(
    start_server: ServerFactory, protocol: str, caplog: pytest.LogCaptureFixture,
) -> None:
    server = await start_server(fails_on_boom, protocol=protocol)
    async with connect(server.url) as ws:
        await ws.send("fine")
        assert await recv(ws) == "fine"
        await ws.send('{"type": "boom"}' if protocol == "json" else "boom")
        if protocol == "json":  # the only plain protocol that reports errors in band
            error = json.loads(await recv(ws))
            assert (error["type"], error["code"]) == ("error", "INTERNAL_ERROR")
            assert "broke" not in json.dumps(error)
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    assert "the handler broke" in caplog.text  # the server's log has the traceback


@pytest.mark.parametrize("protocol", PLAIN)
async def test_an_oversized_frame_closes_with_1009(start_server: ServerFactory,
                                                   protocol: str) -> None:
    server = await start_server("echo", protocol=protocol, max_message_bytes=1024)
    async with connect(server.url) as ws:
        await ws.send("x" * 1024)
        assert len(await recv(ws)) == 1024
        await ws.send(b"x" * 1025)
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


@pytest.mark.parametrize("protocol", PLAIN)
async def test_max_connections_refuses_with_1013(start_server: ServerFactory,
                                                 protocol: str) -> None:
    server = await start_server("echo", protocol=protocol, max_connections=1)
    first = await nbstream.aconnect(server.url, protocol=protocol)
    async with connect(server.url) as ws:
        if protocol == "json":  # the reason in band first
            assert json.loads(await recv(ws))["code"] == "TOO_MANY_CONNECTIONS"
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    await first.aclose()


@pytest.mark.parametrize("protocol", PLAIN)
async def test_rate_limits_keep_the_connection(start_server: ServerFactory,
                                               protocol: str) -> None:
    server = await start_server("echo", protocol=protocol, rate_limit=1, rate_burst=2)
    async with connect(server.url) as ws:
        for i in range(3):
            await ws.send(f'"{i}"')
        replies = [await recv(ws) for _ in range(3 if protocol == "json" else 2)]
        assert [r for r in replies if "RATE_LIMITED" not in r] == ['"0"', '"1"']
        if protocol == "json":  # in band (ahead of the replies); text and raw cannot say it
            [error] = [json.loads(r) for r in replies if "RATE_LIMITED" in r]
            assert error["type"] == "error" and error["details"]["retry_after"] > 0
        await asyncio.sleep(1.1)  # the bucket refills: one more message fits
        await ws.send("later")
        assert await recv(ws) == "later"


@pytest.mark.parametrize("protocol", PLAIN)
async def test_stop_lets_replies_finish_then_closes_with_1001(start_server: ServerFactory,
                                                              protocol: str) -> None:
    started = asyncio.Event()

    async def slow_echo(message: Message, session: Session) -> AsyncIterator[Any]:
        started.set()
        await asyncio.sleep(0.3)
        yield message

    server = await start_server(slow_echo, protocol=protocol)
    async with connect(server.url) as ws:
        await ws.send("in flight")
        await asyncio.wait_for(started.wait(), TIMEOUT)
        stopping = asyncio.ensure_future(server.astop(timeout=TIMEOUT))
        assert await recv(ws) == "in flight"  # no shutdown notice: nothing in band first
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
        report = await asyncio.wait_for(stopping, TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert report.cut == [] and len(report.finished) == 1 and report.closed == 1


@pytest.mark.parametrize("protocol", PLAIN)
async def test_the_agent_speaks_only_nbstream_and_says_so(protocol: str) -> None:
    with pytest.raises(ValueError, match="'agent' handler speaks the nbstream protocol"):
        await nbstream.aserve("agent", protocol=protocol)
