"""Heartbeats for the json, text and raw protocols are WebSocket pings: a peer that
answers stays and its round trip is measured; one that stops answering is closed 1011."""

from __future__ import annotations

import time

import pytest

import nbstream
from tests.conftest import TIMEOUT, ServerFactory, eventually
from tests.silent import SilentClient, silent_server

PLAIN = ["json", "text", "raw"]


@pytest.mark.parametrize("protocol", PLAIN)
async def test_a_peer_that_answers_pings_stays_and_its_round_trip_is_recorded(
    start_server: ServerFactory, protocol: str,
) -> None:
    server = await start_server("echo", protocol=protocol, heartbeat_interval=0.1,
                                heartbeat_timeout=0.5, metrics=True)
    rtts: list[float] = []
    server.events.subscribe(lambda e: rtts.append(e.detail["rtt"])
                            if e.kind == "heartbeat" and e.detail else None)
    client = await nbstream.aconnect(server.url, protocol=protocol, heartbeat_interval=None)
    await eventually(lambda: len(rtts) >= 3, what="three round trips")
    [info] = server.connections.values()
    assert info.heartbeat_rtt is not None and 0 < info.heartbeat_rtt < TIMEOUT
    assert all(0 < rtt < TIMEOUT for rtt in rtts)
    assert (await client.arequest("still here", timeout=TIMEOUT))[0].data == "still here"
    assert client.closed is None
    await client.aclose()


@pytest.mark.parametrize("protocol", PLAIN)
async def test_a_peer_that_stops_answering_pings_is_closed_1011(
    start_server: ServerFactory, protocol: str,
) -> None:
    server = await start_server("echo", protocol=protocol, heartbeat_interval=0.2,
                                heartbeat_timeout=0.3, close_timeout=0.2)
    closes: list[object] = []
    server.events.subscribe(lambda e: closes.append(e.detail) if e.kind == "close" else None)
    peer = SilentClient(server.url)
    await peer.open()
    started = time.monotonic()
    close = await peer.wait_closed()
    assert close is not None and (close.code, close.reason) == (1011, "heartbeat timeout")
    assert peer.pings >= 1
    assert 0.25 < time.monotonic() - started < TIMEOUT
    await eventually(lambda: closes, what="the server's close event")
    assert closes == [{"code": 1011, "reason": "heartbeat timeout"}]


async def test_the_client_closes_1011_when_a_server_stops_answering_its_pings() -> None:
    async with silent_server() as url:
        client = await nbstream.aconnect(url, protocol="raw", heartbeat_interval=0.1,
                                         heartbeat_timeout=0.2)
        with pytest.raises(nbstream.StreamClosed) as closed:
            await client.arecv(timeout=TIMEOUT)
        assert closed.value.code == 1011 and "heartbeat" in closed.value.reason
        frame = client.events.to_frame()
        assert list(frame["kind"])[-1] == "close"
        assert frame["type"].tolist().count("ping") >= 1 and "pong" not in set(frame["type"])
        await client.aclose()


async def test_plain_protocols_ping_once_per_heartbeat_not_also_by_keepalive(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo", protocol="raw", heartbeat_interval=0.1,
                                ping_interval=0.02)  # websockets' keepalive: not for raw
    peer = SilentClient(server.url)
    await peer.open()

    def heartbeats() -> int:  # nbstream's pings carry a message id, keepalive 4 bytes
        return sum(1 for payload in peer.ping_payloads if len(payload) > 4)

    await peer.answer_pings_until(lambda: heartbeats() >= 3)
    assert len(peer.ping_payloads) == heartbeats()  # with the keepalive too: ~15 more
    peer.writer.close()
