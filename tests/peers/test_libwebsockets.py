"""The C echo server on libwebsockets that benchmarks/ compiles, started for real:
inspected with the raw protocol (FlowView rows read through its FlowLog) and
load-tested with raw text and binary frames."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect

import nbstream
from nbstream.views import FlowView
from nbstream.views.commlog import CommLog
from tests.conftest import TIMEOUT, eventually
from tests.peers.checks import raw_load_test, two_step_load_test
from tests.peers.processes import libwebsockets_echo
from tests.peers.test_node_ws import text_then_binary


async def test_raw_frames_round_trip_and_show_in_flowview(comms: CommLog) -> None:
    async with libwebsockets_echo() as url:
        client = await nbstream.aconnect(url, protocol="raw", heartbeat_interval=0.05)
        view = FlowView(client)
        for value in ("hello, C", "ünïcode ✓", b"\xff\x00" * 100):
            [reply] = await client.arequest(value, timeout=TIMEOUT)
            assert reply.data == value
        await eventually(lambda: view.counts.get("pong", 0) >= 1, what="lws answers pings")
        await client.aclose()
        await eventually(lambda: "close" in {row[4] for row in view.rows})
        async with connect(url) as ws:  # the echo gathers fragments into one message
            await ws.send([b"\x01\x02", b"\x03"])
            assert await ws.recv() == b"\x01\x02\x03"
    rows = view.flow_log.rows()
    texts = [(row.direction, row.preview) for row in rows if row.type == "text"]
    assert texts == [("c2s", "hello, C"), ("s2c", "hello, C"), ("c2s", "ünïcode ✓"),
                     ("s2c", "ünïcode ✓")]
    binary = [row for row in rows if row.type == "binary"]
    assert [row.size for row in binary] == [200, 200]
    assert binary[1].preview.startswith("200 B  ff 00 ff 00")
    assert any(row.type == "pong" and row.preview.startswith("rtt ") for row in rows)
    view.close()


@pytest.mark.parametrize("payload", ["lws {i}", b"\x00" * 1000])
async def test_raw_load_test(payload: str | bytes) -> None:
    async with libwebsockets_echo() as url:
        result = await raw_load_test(url, payload, connections=8)
    assert (result.messages["bytes_in"] == result.messages["bytes_out"]).all()


async def test_a_two_step_scenario_with_checks() -> None:
    async with libwebsockets_echo() as url:
        await two_step_load_test(url, text_then_binary, "raw", ["text", "binary"],
                                 ["text echoed", "binary echoed"])
