"""The closed model against real servers on 127.0.0.1: counts, scale, raw frames, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pandas as pd

import nbstream
from nbstream.protocol import Message, Session
from tests.conftest import ServerFactory


async def test_counts_exactly_connections_times_messages(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    result = await nbstream.aload_test(server, connections=20, messages=7, progress=False)
    m = result.messages
    assert len(m) == 140 and m["error"].isna().all()
    assert list(zip(m["connection"], m["seq"], strict=True)) == [  # in this order
        (c, i) for c in range(20) for i in range(7)]
    assert (m["replies"] == 2).all()  # content + end
    assert (m["latency"] > 0).all() and (m["ttft"] <= m["latency"]).all()
    assert (m["latency_corrected"] == m["latency"]).all()
    summary = result.summary()["value"]
    assert summary["requests"] == summary["completed"] == 140 and summary["errors"] == 0
    assert summary["throughput"] > 0 and summary["latency_p50"] <= summary["latency_p99"]
    c = result.connections
    assert len(c) == 20 and (c["messages"] == 7).all() and (c["close_code"] == 1000).all()
    assert c["error"].isna().all()


async def test_a_thousand_concurrent_connections(start_server: ServerFactory) -> None:
    """No first reply goes out before all 1,000 first chats are in: every connection
    must be open at once, or the test cannot finish."""
    everyone = asyncio.Event()
    first_chats = 0

    async def gate(message: Message, session: Session) -> AsyncIterator[str]:
        nonlocal first_chats
        if message.text == "Test message 0":
            first_chats += 1
            if first_chats == 1000:
                everyone.set()
            await everyone.wait()
        yield str(message.text)

    server = await start_server(gate, max_connections_per_user=None)
    result = await nbstream.aload_test(server, connections=1000, messages=2, progress=False)
    summary = result.summary()["value"]
    assert summary["completed"] == 2000, result.messages["error"].value_counts()
    assert summary["connections_failed"] == 0
    c = result.connections
    assert c["connected_at"].max() < c["closed_at"].min()  # all open at the same time


async def test_raw_frames_against_any_echo_server(echo_url: str) -> None:
    result = await nbstream.aload_test(echo_url, connections=5, messages=4,
                                       message_type=None, payload="ping {i}", progress=False)
    m = result.messages
    assert len(m) == 20 and m["error"].isna().all()
    assert (m["bytes_in"] == m["bytes_out"]).all() and (m["bytes_out"] == 6).all()
    assert (m["ttft"] == m["latency"]).all() and (m["replies"] == 1).all()


async def test_binary_payload(echo_url: str) -> None:
    result = await nbstream.aload_test(echo_url, connections=2, messages=3,
                                       message_type=None, payload=b"\x00\x01", progress=False)
    assert result.messages["error"].isna().all() and (result.messages["bytes_in"] == 2).all()


async def test_refused_connections_are_rows_not_exceptions(closed_port_url: str) -> None:
    result = await nbstream.aload_test(closed_port_url, connections=4, messages=3,
                                       timeout=5.0, progress=False)
    assert list(result.connections["error"]) == ["CONNECTION_REFUSED"] * 4
    assert result.connections["close_reason"].str.len().min() > 0
    assert len(result.messages) == 12
    assert (result.messages["error"] == "NOT_SENT").all()
    summary = result.summary()["value"]
    assert summary["connection_errors.CONNECTION_REFUSED"] == 4
    assert summary["errors.NOT_SENT"] == 12 and summary["completed"] == 0


async def test_a_refused_handshake_is_an_http_error_row(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    result = await nbstream.aload_test(server.url.replace("/ws", "/nowhere"), connections=2,
                                       messages=1, progress=False)
    assert list(result.connections["error"]) == ["HTTP_404", "HTTP_404"]


async def test_connection_limit_refusals_are_counted(start_server: ServerFactory) -> None:
    async def slow_echo(message: Message, session: Session) -> AsyncIterator[str]:
        await asyncio.sleep(0.2)  # keeps the first three connections open meanwhile
        yield message.data["text"]

    server = await start_server(slow_echo, max_connections=3)
    result = await nbstream.aload_test(server, connections=6, messages=2, progress=False)
    c = result.connections
    assert (c["completed"] == 2).sum() == 3
    refused = c[c["completed"] == 0]
    assert list(refused["error"]) == ["TOO_MANY_CONNECTIONS"] * 3
    assert list(refused["close_code"]) == [1013] * 3
    summary = result.summary()["value"]
    assert summary["errors.TOO_MANY_CONNECTIONS"] == 3  # the first message of each got it
    assert summary["errors.NOT_SENT"] == 3 and summary["requests"] == 12


async def test_error_envelopes_count_by_code(start_server: ServerFactory) -> None:
    server = await start_server("echo", rate_limit=1.0, rate_burst=2.0)
    result = await nbstream.aload_test(server, connections=1, messages=10, progress=False)
    m = result.messages
    limited = m[m["error"] == "RATE_LIMITED"]
    assert len(m) == 10 and len(limited) >= 7
    assert limited["latency"].notna().all()  # the error envelope answered them
    assert result.summary()["value"]["errors.RATE_LIMITED"] == len(limited)


async def test_an_overdue_message_times_out_and_ends_its_connection(
        start_server: ServerFactory) -> None:
    async def slow_on_second(message: Message, session: Session) -> AsyncIterator[str]:
        if message.data["text"] == "Test message 1":
            await asyncio.sleep(30)
        yield "ok"

    server = await start_server(slow_on_second)
    result = await nbstream.aload_test(server, connections=2, messages=4, timeout=0.3,
                                       progress=False)
    m = result.messages.set_index(["connection", "seq"])["error"]
    assert pd.isna(m[(0, 0)]) and m[(0, 1)] == "TIMEOUT"
    assert list(m.loc[0].iloc[2:]) == ["NOT_SENT", "NOT_SENT"]
    assert list(result.connections["error"]) == ["TIMEOUT", "TIMEOUT"]
    timed_out = result.messages[result.messages["error"] == "TIMEOUT"]
    assert (timed_out["done_at"] - timed_out["sent_at"] >= 0.3).all()
    assert timed_out["latency"].isna().all()


async def test_batched_replies_and_server_pings(start_server: ServerFactory) -> None:
    server = await start_server("agent", batch_max_size=4, batch_max_wait=0.01,
                                heartbeat_interval=0.05, heartbeat_timeout=1.0)
    result = await nbstream.aload_test(server, connections=3, messages=3, progress=False)
    m = result.messages
    assert m["error"].isna().all() and (m["replies"] > 5).all()
    assert result.connections["error"].isna().all()


async def test_duration_bounds_a_closed_run(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    result = await nbstream.aload_test(server, connections=3, duration=0.5, progress=False)
    m = result.messages
    assert len(m) > 30 and m["error"].isna().all()
    assert m["sent_at"].max() < 0.5 + 0.1
    assert result.parameters["planned"] is None


def test_sync_call_inside_a_running_loop_works_like_a_kernel_cell() -> None:
    async def cell() -> Any:
        server = await nbstream.aserve("echo")
        try:
            return nbstream.load_test(server, connections=2, messages=3, progress=False)
        finally:
            await server.astop(timeout=1.0)

    result = asyncio.run(cell())
    assert len(result.messages) == 6 and result.messages["error"].isna().all()
