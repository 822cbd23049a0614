"""The live API: start_load_test returns at once; progress, subscribe, events, cancel."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest

import nbstream
from nbstream.events import FlowEvent
from tests.conftest import TIMEOUT, ServerFactory


async def test_snapshots_arrive_while_running_and_once_when_done(
        start_server: ServerFactory) -> None:
    server = await start_server("agent")
    test = nbstream.start_load_test(server, connections=10, messages=3, progress=False)
    assert not test.done and isinstance(test.progress(), nbstream.LoadProgress)
    snapshots: list[nbstream.LoadProgress] = []
    test.subscribe(snapshots.append)
    result = await asyncio.wait_for(test.aresult(), TIMEOUT)
    assert test.done and isinstance(result, nbstream.LoadResult)
    assert len(snapshots) >= 5  # about ten a second for a test of about a second
    running, final = snapshots[:-1], snapshots[-1]
    assert not any(s.done for s in running) and final.done
    assert any(s.in_flight > 0 and s.connections_open == 10 for s in running)
    assert any(s.throughput > 0 and s.p99 is not None for s in running)
    assert (final.completed, final.errors, final.planned, final.in_flight) == (30, 0, 30, 0)
    assert [s.elapsed for s in snapshots] == sorted(s.elapsed for s in snapshots)
    assert test.progress() == final
    late: list[nbstream.LoadProgress] = []
    test.subscribe(late.append)
    assert late == [final]  # a late subscriber still sees the end


async def test_events_carry_every_connection_and_message(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    test = nbstream.start_load_test(server, connections=3, messages=4, progress=False)
    assert not test.events  # nobody listens: no events are built
    events: list[FlowEvent] = []
    unsubscribe = test.events.subscribe(events.append)
    await asyncio.wait_for(test.aresult(), TIMEOUT)
    unsubscribe()
    kinds = Counter(e.kind for e in events)
    assert kinds == {"open": 3, "out": 12, "in": 24, "close": 3}  # in: content + end
    assert {e.session_id for e in events} == {"0", "1", "2"}
    assert all(e.source == "client" for e in events)
    out = [e for e in events if e.kind == "out"]
    assert all(e.direction == "c2s" and e.message is not None and e.size > 0 for e in out)
    assert {e.direction for e in events if e.kind == "in"} == {"s2c"}
    closes = [e.detail for e in events if e.kind == "close"]
    assert closes == [{"code": 1000, "reason": ""}] * 3


async def test_cancel_stops_early_and_keeps_what_ran(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    test = nbstream.start_load_test(server, connections=5, duration=60.0, progress=False)
    while test.progress().completed < 50:
        await asyncio.sleep(0.05)
    test.cancel()
    result = await asyncio.wait_for(test.aresult(), TIMEOUT)
    m = result.messages
    assert len(m) >= 50 and (m["error"].isna() | (m["error"] == "CANCELLED")).all()
    assert (result.connections["closed_at"] < 60).all()
    assert test.progress().done


async def test_a_failing_subscriber_does_not_stop_the_test(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    test = nbstream.start_load_test(server, connections=2, messages=2, progress=False)

    def broken(progress: nbstream.LoadProgress) -> None:
        raise RuntimeError("view bug")

    test.subscribe(broken)
    result = await asyncio.wait_for(test.aresult(), TIMEOUT)
    assert len(result.messages) == 4


async def test_progress_from_worker_processes(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    test = nbstream.start_load_test(server, connections=4, messages=50, processes=2,
                                    progress=False)
    snapshots: list[nbstream.LoadProgress] = []
    test.subscribe(snapshots.append)
    await asyncio.wait_for(test.aresult(), 60)
    assert snapshots[-1].done and snapshots[-1].completed == 200
    assert not test.events  # worker processes publish no events


async def test_cancel_while_worker_processes_start(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    test = nbstream.start_load_test(server, connections=4, duration=60.0, processes=2,
                                    progress=False)
    test.cancel()
    result = await asyncio.wait_for(test.aresult(), 60)
    assert result.messages["error"].isin(["CANCELLED"]).all()
    assert len(result.messages) <= 4


@pytest.fixture
def thread_server() -> Iterator[nbstream.Server]:
    server = nbstream.serve("echo")
    yield server
    server.stop(timeout=1.0)


def test_sync_result_with_a_timeout(thread_server: nbstream.Server) -> None:
    test = nbstream.start_load_test(thread_server, connections=2, duration=1.0,
                                    progress=False)
    with pytest.raises(TimeoutError):
        test.result(timeout=0.01)
    assert "running" in test._repr_html_()
    result = test.result(timeout=TIMEOUT)
    assert result.messages["error"].isna().all()
    assert "<table" in test._repr_html_() and "done" in repr(test)


def test_load_test_shows_a_progress_bar(thread_server: nbstream.Server,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    result = nbstream.load_test(thread_server, connections=2, messages=5)
    assert len(result.messages) == 10
    bar = capsys.readouterr().err
    assert "load test" in bar and "10/10" in bar
