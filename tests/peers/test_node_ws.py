"""A Node.js server on the ``ws`` package (npm), started for real: inspected with the
raw, text and json protocols (FlowView rows read through its FlowLog) and load-tested
with raw text and binary frames."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect

import nbstream
from nbstream.loadtest import User
from nbstream.views import FlowView
from nbstream.views.commlog import CommLog
from tests.conftest import TIMEOUT, eventually
from tests.peers.checks import raw_load_test, two_step_load_test
from tests.peers.processes import node_ws_server


async def test_raw_frames_round_trip_and_show_in_flowview(comms: CommLog) -> None:
    async with node_ws_server() as url:
        client = await nbstream.aconnect(url, protocol="raw", heartbeat_interval=0.05)
        view = FlowView(client)
        [text] = await client.arequest("héllo, node", timeout=TIMEOUT)
        [binary] = await client.arequest(bytes(range(64)), timeout=TIMEOUT)
        assert (text.type, text.data) == ("text", "héllo, node")
        assert (binary.type, binary.data) == ("binary", bytes(range(64)))
        await eventually(lambda: view.counts.get("pong", 0) >= 1, what="node answers pings")
        await client.aclose()
        await eventually(lambda: "close" in {row[4] for row in view.rows})
    rows = view.flow_log.rows()
    echoed = [row for row in rows if row.type == "binary"]
    assert [row.direction for row in echoed] == ["c2s", "s2c"]
    assert echoed[1].size == 64 and echoed[1].preview.startswith("64 B  00 01 02")
    assert "base64:\nAAECAwQF" in echoed[1].pretty()
    [pong, *_] = [row for row in rows if row.type == "pong"]
    assert pong.preview.startswith("rtt ") and pong.direction == "s2c"
    assert rows[-1].preview == "1000 normal closure"
    view.close()


async def test_json_requests_get_their_answers() -> None:
    async with node_ws_server() as url:
        client = await nbstream.aconnect(url, protocol="json")
        [total] = await client.arequest({"type": "sum", "values": [1, 2, 3.5]},
                                        timeout=TIMEOUT)
        assert (total.type, total.data) == ("sum", {"type": "sum", "total": 6.5})
        [now] = await client.arequest({"type": "time"}, timeout=TIMEOUT)
        assert now.type == "time" and now.data["now"] > 0
        [text] = await client.arequest("plain words", timeout=TIMEOUT)
        assert (text.type, text.data) == ("text", "plain words")  # not JSON: not an error
        await client.aclose()


async def test_text_protocol_and_a_fragmented_message() -> None:
    async with node_ws_server() as url:
        client = await nbstream.aconnect(url, protocol="text")
        [reply] = await client.arequest({"type": "sum", "values": [2, 2]}, timeout=TIMEOUT)
        assert (reply.type, reply.data) == ("text", '{"type":"sum","total":4}')
        await client.aclose()
        async with connect(url) as ws:  # ws reassembles a message sent in fragments
            await ws.send(["frag", "mented"])
            assert await ws.recv() == "fragmented"


@pytest.mark.parametrize("payload", ["node {i}", b"\x00\x01binary"])
async def test_raw_load_test(payload: str | bytes) -> None:
    async with node_ws_server() as url:
        result = await raw_load_test(url, payload)
    sizes = result.messages["bytes_in"]
    assert (sizes == result.messages["bytes_out"]).all()  # an echo, frame for frame


async def sum_then_time(user: User) -> None:
    """Two JSON requests of the Node server, each timed and checked."""
    [total] = await user.request({"type": "sum", "values": [user.iteration, 0.5]},
                                 name="sum")
    user.check("sum adds up", total.data == {"type": "sum", "total": user.iteration + 0.5})
    [now] = await user.request({"type": "time"}, name="time")
    user.check("a time", now.type == "time" and now.data["now"] > 0)


async def text_then_binary(user: User) -> None:
    """Two raw echoes, a text and a binary frame, each timed and checked."""
    text = f"user {user.index} iteration {user.iteration}"
    [echoed] = await user.request(text, name="text")
    user.check("text echoed", echoed.data == text)
    [binary] = await user.request(text.encode(), name="binary")
    user.check("binary echoed", (binary.type, binary.data) == ("binary", text.encode()))


async def test_two_step_scenarios_with_checks() -> None:
    async with node_ws_server() as url:
        await two_step_load_test(url, sum_then_time, "json", ["sum", "time"],
                                 ["sum adds up", "a time"])
        await two_step_load_test(url, text_then_binary, "raw", ["text", "binary"],
                                 ["text echoed", "binary echoed"])
