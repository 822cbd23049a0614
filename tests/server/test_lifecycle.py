"""Register on open, clean up on every exit path, with no task or registry leak."""

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import nbstream
from nbstream.protocol import Message, Session
from tests.conftest import TIMEOUT, ServerFactory, eventually, recv_json, recv_until_end


def assert_clean(server: nbstream.Server) -> None:
    assert len(server.connections) == 0
    health = server.health()
    assert (health["connections"], health["users"]) == (0, 0)


async def test_open_registers_and_close_unregisters(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    tasks_before = len(asyncio.all_tasks())
    async with connect(server.url + "?user=alice") as ws:
        await eventually(lambda: len(server.connections) == 1)
        info = next(iter(server.connections.values()))
        assert info.user == "alice"
        await ws.send(json.dumps({"type": "chat", "data": {"text": "hi"}}))
        await recv_until_end(ws)
        info = server.connections[info.session_id]
        assert (info.messages_in, info.messages_out) == (1, 2)
    await eventually(lambda: len(server.connections) == 0)
    assert_clean(server)
    assert server.health()["sessions"] == 0  # a normal close ends the session
    await eventually(lambda: len(asyncio.all_tasks()) <= tasks_before)


async def test_client_that_vanishes_is_cleaned_up(start_server: ServerFactory) -> None:
    server = await start_server(nbstream.Agent(token_delay=0.05))
    ws = await connect(server.url + "?user=bob")
    await ws.send(json.dumps({"type": "chat", "data": {"text": "tell me a story"}}))
    await recv_json(ws)
    ws.transport.abort()  # no close frame: the TCP connection just disappears
    await eventually(lambda: len(server.connections) == 0)
    assert_clean(server)


async def test_handler_that_raises_gives_internal_error_without_traceback(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(message: Message, session: Session) -> AsyncIterator[str]:
        yield "first"
        raise RuntimeError("secret internals")

    server = await start_server(broken)
    caplog.set_level(logging.ERROR, logger="nbstream")
    async with connect(server.url) as ws:
        await ws.send(json.dumps({"type": "chat", "data": {"text": "hi"}}))
        assert (await recv_json(ws))["data"] == {"text": "first"}
        error = await recv_json(ws)
        assert error["type"] == "error"
        assert error["data"]["code"] == "INTERNAL_ERROR"
        assert "secret" not in json.dumps(error)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    assert "secret internals" in caplog.text
    await eventually(lambda: len(server.connections) == 0)
    assert_clean(server)


async def test_server_stop_cleans_up_every_connection(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    clients = [await connect(server.url + f"?user=u{i}") for i in range(5)]
    await eventually(lambda: len(server.connections) == 5)
    report = await server.astop(timeout=1.0)
    assert report.closed == 5
    assert_clean(server)
    for ws in clients:
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert ws.close_code == 1001


async def test_wrong_path_is_404_and_health_answers_json(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    body = json.loads(await asyncio.wait_for(reader.readexactly(length), TIMEOUT))
    writer.close()
    assert head.startswith(b"HTTP/1.1 200")
    assert b"application/json" in head
    assert body["status"] == "ok" and body["connections"] == 0 and body["uptime"] >= 0
    with pytest.raises(Exception, match="404"):
        await connect(f"ws://127.0.0.1:{server.port}/elsewhere")
