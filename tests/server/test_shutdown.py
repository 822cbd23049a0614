"""Graceful shutdown: refuse new, announce, drain until the deadline, close with 1001."""

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import nbstream
from tests.conftest import TIMEOUT, ServerFactory, recv_json


async def read_all(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every envelope until the connection closes."""
    frames: list[dict[str, Any]] = []
    with pytest.raises(ConnectionClosed):
        while True:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))
    return frames


async def test_in_flight_stream_finishes_before_close(start_server: ServerFactory) -> None:
    server = await start_server(nbstream.Agent(token_delay=0.02))
    async with connect(server.url) as ws:
        await ws.send(json.dumps({"type": "chat", "data": {"text": "hello there"}}))
        await recv_json(ws)  # the stream has started
        stopping = asyncio.create_task(server.astop(timeout=TIMEOUT))
        frames = await read_all(ws)
        report = await stopping
        assert ws.close_code == 1001
    types = [f["type"] for f in frames]
    assert "server_shutdown" in types
    assert types[-1] == "end"
    assert report.finished and not report.cut and report.closed == 1


async def test_stream_past_the_deadline_is_cut(start_server: ServerFactory) -> None:
    server = await start_server(nbstream.Agent(token_delay=1.0))
    async with connect(server.url) as ws:
        await ws.send(json.dumps({"type": "chat", "data": {"text": "a long answer"}}))
        await asyncio.sleep(0.1)
        report = await server.astop(timeout=0.2)
        frames = await read_all(ws)
    assert "end" not in [f["type"] for f in frames]
    assert len(report.cut) == 1 and not report.finished
    assert report.seconds < 0.2 + TIMEOUT


async def test_stop_refuses_new_connections_and_is_safe_twice(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo")
    first = await server.astop()
    second = await server.astop()
    assert first is second
    assert server.health()["status"] == "stopped"
    with pytest.raises(OSError):
        await connect(server.url, open_timeout=TIMEOUT)


async def test_chats_during_the_drain_are_refused(start_server: ServerFactory) -> None:
    server = await start_server(nbstream.Agent(token_delay=0.05))
    async with connect(server.url) as ws:
        await ws.send(json.dumps({"type": "chat", "data": {"text": "hello"}}))
        await recv_json(ws)
        stopping = asyncio.create_task(server.astop(timeout=TIMEOUT))
        while (await recv_json(ws))["type"] != "server_shutdown":
            pass
        await ws.send(json.dumps({"type": "chat", "id": "late", "data": {"text": "more"}}))
        frames = await read_all(ws)
        await stopping
    refusals = [f for f in frames if f["type"] == "error"]
    assert refusals and refusals[0]["data"]["code"] == "SHUTTING_DOWN"
    assert refusals[0]["data"]["details"]["reply_to"] == "late"


def test_the_report_says_what_was_closed_or_that_nothing_was() -> None:
    from nbstream import ShutdownReport

    assert str(ShutdownReport(seconds=0.004)) == (
        "stopped in 0.00 s: no connection was left to close")
    assert str(ShutdownReport(finished=["s1"], closed=1, seconds=0.25)) == (
        "stopped in 0.25 s: 1 connection closed, 1 stream finished, 0 cut")
    assert str(ShutdownReport(finished=["s1", "s2"], cut=["s3"], closed=3, seconds=1.5)) == (
        "stopped in 1.50 s: 3 connections closed, 2 streams finished, 1 cut")
