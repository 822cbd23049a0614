"""Application heartbeats: pings go out, silent peers are dropped, pings are answered."""

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import nbstream
from tests.conftest import TIMEOUT, ServerFactory, eventually, recv_json


async def test_server_pings_and_drops_a_peer_that_never_answers(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo", heartbeat_interval=0.2, heartbeat_timeout=0.3)
    async with connect(server.url) as ws:
        started = time.monotonic()
        ping = await recv_json(ws)
        assert ping["type"] == "ping"
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
        elapsed = time.monotonic() - started
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1011, "heartbeat timeout")
    assert 0.25 < elapsed < TIMEOUT


async def test_a_peer_that_answers_stays_and_its_round_trip_is_measured(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo", heartbeat_interval=0.1, heartbeat_timeout=0.2)
    async with connect(server.url) as ws:
        for _ in range(5):  # five rounds: far past interval + timeout
            ping = await recv_json(ws)
            assert ping["type"] == "ping"
            await ws.send(json.dumps({"type": "pong", "data": {"ping_id": ping["id"]}}))
        info = next(iter(server.connections.values()))
        assert info.heartbeat_rtt is not None and info.heartbeat_rtt < TIMEOUT


async def test_nbstream_client_answers_pings_by_itself_while_idle(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo", heartbeat_interval=0.1, heartbeat_timeout=0.2)
    client = await nbstream.aconnect(server.url)
    for _ in range(2):  # idle before the first chat, and again after one
        await asyncio.sleep(1.0)  # ten heartbeat intervals with nobody reading
        replies = await client.achat("still here?", timeout=TIMEOUT)
        assert replies[-1].type == "end"
    assert next(iter(server.connections.values())).heartbeat_rtt is not None
    assert client.reconnects == 0  # never dropped for a missed pong
    await client.aclose()


async def test_client_ping_gets_a_pong(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    async with connect(server.url) as ws:
        await ws.send(json.dumps({"type": "ping", "id": "p-1"}))
        pong = await recv_json(ws)
        assert pong["type"] == "pong" and pong["data"] == {"ping_id": "p-1"}


async def test_a_session_dropped_for_missed_heartbeats_waits_to_be_resumed(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo", heartbeat_interval=0.1, heartbeat_timeout=0.1)
    client = await nbstream.aconnect(server, auto_pong=False)  # it will miss the pings
    await client.achat("remember me", timeout=TIMEOUT)
    await eventually(lambda: client.reconnects > 0, what="closed with 1011, then back")
    assert client.recovered is True  # the session waited: nothing was lost
    await client.aclose()
