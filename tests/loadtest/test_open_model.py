"""The open model: a fixed timetable, and latency corrected for coordinated omission."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

import numpy as np
import pytest

import nbstream
from nbstream.protocol import Message, Session
from tests.conftest import ServerFactory


async def test_holds_its_rate_within_five_percent_over_five_seconds(
        start_server: ServerFactory) -> None:
    server = await start_server("echo")
    result = await nbstream.aload_test(server, connections=20, rate=200.0, duration=5.0,
                                       progress=False)
    m = result.messages
    assert len(m) == 1000 and m["error"].isna().all()
    start = m["intended_at"].min()
    per_second = np.histogram(m["sent_at"] - start, bins=np.arange(6))[0]
    assert all(190 <= n <= 210 for n in per_second), per_second
    assert result.summary()["value"]["throughput"] == pytest.approx(200.0, rel=0.05)


async def test_a_server_stall_shows_in_corrected_latency_only() -> None:
    """wrk2's argument: during a 1 s stall, messages due then wait for a free connection;
    their raw latency (from sending) is short, their corrected one (from due) is not."""
    stalled = False

    async def stall_once(message: Message, session: Session) -> AsyncGenerator[str, None]:
        nonlocal stalled
        if not stalled and message.data["text"] == "Test message 100":
            stalled = True
            time.sleep(1.0)  # noqa: ASYNC251 - on purpose: blocks the server's whole loop
        yield "ok"

    server = await nbstream.aserve(stall_once, thread=True)
    try:
        result = await nbstream.aload_test(server, connections=5, rate=200.0, duration=3.0,
                                           progress=False)
    finally:
        await server.astop(timeout=1.0)
    m = result.messages
    assert stalled and len(m) == 600 and m["error"].isna().all()
    slow_raw = int((m["latency"] > 0.5).sum())
    slow_corrected = int((m["latency_corrected"] > 0.5).sum())
    assert slow_raw <= 5  # only the messages in flight during the stall (one per connection)
    assert slow_corrected >= 50  # everything due during the first half of the stall
    summary = result.summary()["value"]
    assert summary["latency_corrected_p99"] > 0.5
    assert summary["latency_p90"] < 0.1


async def test_server_pings_between_messages_are_answered(start_server: ServerFactory) -> None:
    server = await start_server("echo", heartbeat_interval=0.05, heartbeat_timeout=0.1)
    rtts: list[float] = []
    server.events.subscribe(lambda e: rtts.append(1.0) if e.kind == "heartbeat" else None)
    result = await nbstream.aload_test(server, connections=2, rate=10.0, duration=1.0,
                                       progress=False)
    assert result.messages["error"].isna().all() and len(result.messages) == 10
    assert result.connections["error"].isna().all()
    assert len(rtts) >= 5  # pongs came back while connections sat idle


async def test_raw_frames_on_a_timetable(echo_url: str) -> None:
    result = await nbstream.aload_test(echo_url, connections=4, rate=100.0, duration=0.5,
                                       message_type=None, progress=False)
    m = result.messages
    assert len(m) == 50 and m["error"].isna().all()
    assert list(m["seq"]) == list(range(50))
    assert (m["sent_at"] >= m["intended_at"]).all()
    assert np.allclose(np.diff(m["intended_at"]), 0.01)


async def test_unsendable_slots_are_rows_without_a_connection(closed_port_url: str) -> None:
    result = await nbstream.aload_test(closed_port_url, connections=2, rate=100.0,
                                       duration=0.1, timeout=2.0, progress=False)
    m = result.messages
    assert len(m) == 10 and (m["error"] == "NOT_SENT").all()
    assert m["connection"].isna().all() and m["intended_at"].notna().all()
