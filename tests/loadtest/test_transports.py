"""transport="websockets" and "picows": one plan, same rows, same columns, same results.

The rest of tests/loadtest runs on transport="auto" (picows, installed by the test
extra); this module runs what differs between the libraries on both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

import nbstream
from nbstream.loadtest import User
from nbstream.loadtest.transports import TransportName, choose
from tests.conftest import TIMEOUT, ServerFactory
from tests.loadtest.flows import subscribe_and_leave

TRANSPORTS: list[TransportName] = ["websockets", "picows"]


async def test_one_plan_gives_the_same_rows_on_both_transports(
        start_server: ServerFactory) -> None:
    server = await start_server("echo", max_connections_per_user=None)
    plan = {"connections": 10, "messages": 60, "progress": False}
    results = {t: await nbstream.aload_test(server, transport=t, **plan)  # type: ignore[arg-type]
               for t in TRANSPORTS}
    frames = [r.messages for r in results.values()]
    assert [list(f.columns) for f in frames] == [list(frames[0].columns)] * 2
    assert [list(f.dtypes) for f in frames] == [list(frames[0].dtypes)] * 2
    for transport, result in results.items():
        m = result.messages
        assert result.parameters["transport"] == transport and transport in str(result)
        assert len(m) == 600 and m["error"].isna().all() and (m["replies"] == 2).all()
        assert list(zip(m["connection"], m["seq"], strict=True)) == [
            (c, i) for c in range(10) for i in range(60)]
    ws, pw = (results[t].messages for t in TRANSPORTS)
    assert (ws["bytes_in"] > 0).all() and (pw["bytes_in"] > 0).all()
    assert abs(ws["bytes_out"].mean() - pw["bytes_out"].mean()) < 1  # same frames out
    # latency distributions: same order of magnitude at every percentile (a shared
    # machine moves them, so the bound is loose; a broken clock would not be)
    for q in (0.1, 0.5, 0.9):
        a, b = ws["latency"].quantile(q), pw["latency"].quantile(q)
        assert 0 < a < 1 and 0 < b < 1 and 0.05 < a / b < 20, (q, a, b)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_open_model_keeps_its_timetable_on_both(
        start_server: ServerFactory, transport: TransportName) -> None:
    server = await start_server("echo", max_connections_per_user=None)
    result = await nbstream.aload_test(server, connections=4, rate=200.0, duration=0.5,
                                       transport=transport, progress=False)
    m = result.messages
    assert list(m["seq"]) == list(range(100)) and m["error"].isna().all()
    assert np.allclose(m["intended_at"].diff().dropna(), 0.005, atol=1e-6)
    assert result.summary()["value"]["send_lag_p50"] < 0.05


async def _fragments(ws: ServerConnection) -> None:
    """Answers each message with a fragmented text message and a binary one."""
    async for frame in ws:
        await ws.send(iter(["frag", "ment", f"ed {frame!s}"]))
        await ws.send(b"\x00\x01\xff")


@pytest.fixture
async def fragments_url() -> AsyncIterator[str]:
    async with serve(_fragments, "127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_fragments_are_assembled_and_binary_stays_bytes(
        fragments_url: str, transport: TransportName) -> None:
    async def flow(user: User) -> None:
        text = await user.request(f"x{user.iteration}", name="text")
        binary = await user.client.arecv(timeout=TIMEOUT)
        user.check("assembled", text[0].data == f"fragmented x{user.iteration}")
        user.check("binary", binary.type == "binary" and binary.data == b"\x00\x01\xff")

    result = await nbstream.aload_test(fragments_url, scenario=flow, protocol="raw",
                                       connections=2, iterations=3, transport=transport,
                                       progress=False)
    assert result.messages["error"].isna().all()
    assert result.checks["passes"].to_dict() == {"assembled": 6, "binary": 6}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_scenario_and_its_errors_are_the_same_on_both(
        feed_url: str, transport: TransportName) -> None:
    result = await nbstream.aload_test(feed_url, scenario=subscribe_and_leave,
                                       protocol="json", connections=3, iterations=2,
                                       data=[{"symbol": "A"}, {"symbol": "BAD"}],
                                       transport=transport, progress=False)
    assert list(result.steps["count"]) == [6, 6] and result.messages["error"].isna().all()
    assert result.checks.loc["price positive", "fails"] == 3

    async def closing(user: User) -> None:
        await user.request({"type": "close"}, name="close")

    closed = await nbstream.aload_test(feed_url, scenario=closing, protocol="json",
                                       connections=2, iterations=2, transport=transport,
                                       progress=False)
    assert list(closed.messages["error"]) == ["CLOSED_1011"] * 2
    assert list(closed.connections["close_code"]) == [1011, 1011]
    assert list(closed.iterations["error"]) == ["CLOSED_1011", "NOT_SENT"] * 2


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_timeouts_refusals_and_dead_ports_on_both(
        start_server: ServerFactory, closed_port_url: str, transport: TransportName) -> None:
    async def silent(message: object, session: object) -> AsyncIterator[str]:
        await asyncio.sleep(30)
        yield "late"

    server = await start_server(silent)
    slow = await nbstream.aload_test(server, connections=2, messages=2, timeout=0.3,
                                     transport=transport, progress=False)
    assert list(slow.messages["error"]) == ["TIMEOUT", "NOT_SENT"] * 2
    full = await start_server("echo", max_connections=1, max_connections_per_user=None)
    refused = await nbstream.aload_test(full, connections=3, messages=1, ramp_up=0.0,
                                        transport=transport, progress=False)
    errors = refused.connections["error"].dropna()
    assert set(errors) <= {"TOO_MANY_CONNECTIONS"} and len(errors) >= 1
    dead = await nbstream.aload_test(closed_port_url, connections=1, messages=1,
                                     transport=transport, progress=False)
    assert list(dead.connections["error"]) == ["CONNECTION_REFUSED"]


async def test_two_processes_on_picows_merge_as_ever(start_server: ServerFactory) -> None:
    server = await start_server("echo", max_connections_per_user=None)
    result = await nbstream.aload_test(server, connections=4, messages=20, processes=2,
                                       transport="picows", progress=False)
    assert result.parameters["transport"] == "picows" and result.parameters["processes"] == 2
    assert len(result.messages) == 80 and result.messages["error"].isna().all()


def test_auto_takes_picows_only_where_it_honours_every_option() -> None:
    assert choose("auto", {}) == "picows"
    assert choose("auto", {"additional_headers": {"X": "1"}, "subprotocols": ["a"]}) == "picows"
    assert choose("auto", {"max_queue": 4}) == "websockets"
    assert choose("auto", {"compression": "deflate"}) == "websockets"
    assert choose("websockets", {"max_queue": 4}) == "websockets"
    with pytest.raises(ValueError, match="cannot honour max_queue"):
        nbstream.start_load_test("ws://127.0.0.1:1/", transport="picows", max_queue=4,
                                 progress=False)
    with pytest.raises(ValueError, match="transport="):
        nbstream.start_load_test("ws://127.0.0.1:1/", transport="fast",  # type: ignore[arg-type]
                                 progress=False)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_headers_and_subprotocols_reach_the_server(transport: TransportName) -> None:
    seen: list[tuple[str | None, str | None]] = []

    async def handler(ws: ServerConnection) -> None:
        seen.append((ws.request.headers.get("X-Test") if ws.request else None,
                     ws.subprotocol))
        async for frame in ws:
            await ws.send(frame)

    async with serve(handler, "127.0.0.1", 0, subprotocols=[Subprotocol("feed.v2")]) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        result = await nbstream.aload_test(
            url, connections=1, messages=2, protocol="raw", transport=transport,
            additional_headers={"X-Test": "yes"}, subprotocols=["feed.v2"], progress=False)
    assert result.messages["error"].isna().all() and seen == [("yes", "feed.v2")]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_raw_frames_time_out_or_close_as_rows(transport: TransportName) -> None:
    """The built-in flow of a protocol whose first frame back is the answer: an overdue
    reply is a TIMEOUT row, a server that closes is a CLOSED row, the rest NOT_SENT."""

    async def handler(ws: ServerConnection) -> None:
        async for frame in ws:
            if frame == "0 1":
                await ws.wait_closed()  # until the watchdog drops the connection
            elif frame == "1 1":
                await ws.close(1011, "broken")
            else:
                await ws.send(frame)

    async with serve(handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        result = await asyncio.wait_for(nbstream.aload_test(
            url, connections=3, messages=3, protocol="raw", payload="{connection} {i}",
            timeout=0.3, transport=transport, progress=False), TIMEOUT)
    m = result.messages.set_index(["connection", "seq"])
    assert list(m["error"].fillna("ok")) == ["ok", "TIMEOUT", "NOT_SENT", "ok", "CLOSED_1011",
                                            "NOT_SENT", "ok", "ok", "ok"]
    assert (m["done_at"] - m["sent_at"]).loc[(0, 1)] >= 0.3
    assert m["bytes_in"].loc[(2, 2)] == 3 and m["latency"].loc[(2, 2)] > 0
    assert list(result.connections["error"].fillna("ok")) == ["TIMEOUT", "CLOSED_1011", "ok"]
