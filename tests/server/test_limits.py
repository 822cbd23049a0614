"""Limits: frame size (1009), rate (RATE_LIMITED), connections (1013), context budget."""

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import nbstream
from tests.conftest import TIMEOUT, ServerFactory, recv_json, recv_until_end


async def test_oversized_frame_closes_with_1009(start_server: ServerFactory) -> None:
    server = await start_server("echo", max_message_bytes=1024)
    async with connect(server.url) as ws:
        await ws.send(json.dumps({"type": "chat", "data": {"text": "x" * 2000}}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_rate_limit_answers_and_keeps_the_connection(start_server: ServerFactory) -> None:
    server = await start_server("echo", rate_limit=5, rate_burst=2)
    async with connect(server.url) as ws:
        for i in range(3):
            await ws.send(json.dumps({"type": "chat", "id": f"c{i}", "data": {"text": "x"}}))
        frames = [await recv_json(ws) for _ in range(5)]
        errors = [f for f in frames if f["type"] == "error"]
        assert len(errors) == 1
        error = errors[0]["data"]
        assert error["code"] == "RATE_LIMITED" and error["recoverable"] is True
        assert error["details"]["reply_to"] == "c2"
        assert 0 < error["details"]["retry_after"] <= 0.2
        await asyncio.sleep(error["details"]["retry_after"])
        await ws.send(json.dumps({"type": "chat", "data": {"text": "again"}}))
        assert [f["type"] for f in await recv_until_end(ws)] == ["content", "end"]


async def test_nbstream_client_raises_rate_limited_with_retry_after(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo", rate_limit=1, rate_burst=1)
    client = await nbstream.aconnect(server.url)
    await client.achat("one", timeout=TIMEOUT)
    with pytest.raises(nbstream.StreamError) as error:
        await client.achat("two", timeout=TIMEOUT)
    assert error.value.code == nbstream.ErrorCode.RATE_LIMITED
    assert error.value.details["retry_after"] > 0
    await client.aclose()


async def test_max_connections_refuses_with_1013(start_server: ServerFactory) -> None:
    server = await start_server("echo", max_connections=2)
    async with connect(server.url), connect(server.url):
        async with connect(server.url) as third:
            error = await recv_json(third)
            assert error["data"]["code"] == "TOO_MANY_CONNECTIONS"
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(third.recv(), TIMEOUT)
            assert third.close_code == 1013


async def test_context_budget(start_server: ServerFactory) -> None:
    server = await start_server("echo", context_max_messages=2)
    client = await nbstream.aconnect(server.url)
    await client.achat("1", timeout=TIMEOUT)
    await client.achat("2", timeout=TIMEOUT)
    with pytest.raises(nbstream.StreamError) as error:
        await client.achat("3", timeout=TIMEOUT)
    assert error.value.code == "CONTEXT_EXHAUSTED"
    other = await nbstream.aconnect(server.url)
    assert (await other.achat("fresh session", timeout=TIMEOUT))[-1].type == "end"
    await client.aclose()
    await other.aclose()


async def test_history_stays_within_both_bounds(start_server: ServerFactory) -> None:
    server = await start_server("echo", history_max_messages=10, history_max_bytes=2_000)
    client = await nbstream.aconnect(server.url)
    for i in range(30):
        await client.achat("y" * 100 + str(i), timeout=TIMEOUT)
    info = server.connections[client.session_id or ""]
    assert 0 < info.history_messages <= 10
    assert 0 < info.history_bytes <= 2_000
    await client.aclose()


async def test_bad_input_never_kills_the_connection(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    async with connect(server.url) as ws:
        bad: list[str | bytes] = ["nope", "{}", '{"type": "tool_use"}', b"\x00\x01", "[1, 2]"]
        for frame in bad:
            await ws.send(frame)
            reply = await recv_json(ws)
            assert reply["type"] == "error"
            assert reply["data"]["code"] == "INVALID_MESSAGE"
        await ws.send(json.dumps({"type": "chat", "data": {"text": "fine"}}))
        assert (await recv_until_end(ws))[-1]["type"] == "end"
