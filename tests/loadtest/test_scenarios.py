"""Scripted load tests: ``load_test(url, scenario=user_flow)`` against servers nbstream
wrote (each protocol) and one it did not (a plain websockets market feed)."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import nbstream
from nbstream.loadtest import User
from nbstream.protocol import Message, Session
from tests.conftest import TIMEOUT, ServerFactory
from tests.loadtest.flows import echo_once, subscribe_and_leave

SYMBOLS = pd.DataFrame({"symbol": ["AAA", "BB", "BAD"]})


async def test_a_two_step_scenario_against_a_server_nbstream_did_not_write(
        feed_url: str) -> None:
    result = await nbstream.aload_test(feed_url, scenario=subscribe_and_leave, protocol="json",
                                       connections=3, iterations=4, data=SYMBOLS,
                                       progress=False)
    m = result.messages
    assert m["error"].isna().all() and len(m) == 24
    assert sorted(m["step"].unique()) == ["subscribe", "unsubscribe"]
    steps = result.steps
    assert list(steps.index) == ["subscribe", "unsubscribe"]
    assert list(steps["count"]) == [12, 12] and list(steps["errors"]) == [0, 0]
    assert (steps["p50"] <= steps["p99"]).all() and (steps["p99"] <= steps["max"]).all()
    # rows are dealt round-robin: user c gets row c every iteration; BAD has no price
    checks = result.checks
    assert checks.loc["subscribed", "passes"] == 12 and checks.loc["subscribed", "fails"] == 0
    assert checks.loc["price positive", "fails"] == 4
    rate = checks.loc["price positive", "rate"]
    assert isinstance(rate, float) and math.isclose(rate, 8 / 12)
    unsubscribe = m[m["step"] == "unsubscribe"]
    assert (unsubscribe["replies"] == 1).all() and (unsubscribe["bytes_out"] > 0).all()
    it = result.iterations
    assert len(it) == 12 and it["error"].isna().all()
    assert (it["think_time"] >= 0.005).all() and (it["duration"] > it["think_time"]).all()
    summary = result.summary()["value"]
    assert summary["iterations"] == 12 and summary["iterations_failed"] == 0
    assert summary["step.subscribe.count"] == 12 and summary["check.price positive.fails"] == 4
    assert summary["step.unsubscribe.p99"] == steps.loc["unsubscribe", "p99"]
    assert result.parameters["scenario"] == "subscribe_and_leave"
    assert result.parameters["protocol"] == "json" and result.parameters["data_rows"] == 3
    assert "scenario subscribe_and_leave" in str(result) and "json protocol" in str(result)


async def test_an_exception_in_a_flow_is_an_error_row_named_for_where_it_escaped(
        feed_url: str) -> None:
    async def flaky(user: User) -> None:
        if user.iteration == 1:
            async with user.step("lookup"):
                raise KeyError("no such symbol")
        if user.iteration == 2:
            raise ValueError("broken flow")
        user.record("measured", 0.002)

    result = await nbstream.aload_test(feed_url, scenario=flaky, connections=2, iterations=4,
                                       protocol="json", progress=False)
    m = result.messages
    errors = m[m["error"].notna()]
    assert sorted(zip(errors["step"], errors["error"], strict=True)) == [
        ("flaky", "ValueError"), ("flaky", "ValueError"),
        ("lookup", "KeyError"), ("lookup", "KeyError")]
    assert list(result.iterations["error"].fillna("")) == ["", "KeyError", "ValueError", ""] * 2
    measured = m[m["step"] == "measured"]
    assert len(measured) == 4 and (measured["latency"].round(3) == 0.002).all()
    assert result.summary()["value"]["iterations_failed"] == 4


async def test_a_lost_connection_ends_its_user_and_the_rest_is_not_run(feed_url: str) -> None:
    async def closing(user: User) -> None:
        value = {"type": "close"} if user.iteration == 1 else {"type": "unsubscribe"}
        await user.request(value, name="ask")

    result = await nbstream.aload_test(feed_url, scenario=closing, connections=1,
                                       iterations=4, protocol="json", progress=False)
    assert list(result.messages["error"].fillna("")) == ["", "CLOSED_1011"]
    assert list(result.iterations["error"].fillna("")) == ["", "CLOSED_1011", "NOT_SENT",
                                                           "NOT_SENT"]
    assert list(result.connections["error"]) == ["CLOSED_1011"]


async def test_a_request_that_times_out_is_a_timeout_row(feed_url: str) -> None:
    async def waits_forever(user: User) -> None:
        await user.request({"type": "subscribe", "symbol": "A"}, name="never",
                           until=lambda m: m.type == "nothing", timeout=0.2)

    result = await nbstream.aload_test(feed_url, scenario=waits_forever, connections=1,
                                       iterations=2, protocol="json", progress=False)
    row = result.messages.iloc[0]
    assert row["error"] == "TIMEOUT" and row["replies"] == 2 and 0.2 <= row["done_at"] < 2
    assert list(result.iterations["error"]) == ["TIMEOUT", "NOT_SENT"]


async def test_iterations_running_when_the_test_is_cancelled_end_as_cancelled(
        feed_url: str) -> None:
    async def asks_then_thinks(user: User) -> None:
        await user.request({"type": "unsubscribe"}, name="ask")
        await user.sleep(60)

    test = nbstream.start_load_test(feed_url, scenario=asks_then_thinks, connections=2,
                                    iterations=3, protocol="json", progress=False)
    while test.progress().completed < 2:
        await asyncio.sleep(0.02)
    test.cancel()
    result = await asyncio.wait_for(test.aresult(), TIMEOUT)
    it = result.iterations
    assert list(it["error"]) == ["CANCELLED", "CANCELLED"]
    assert (it["done_at"] >= it["started_at"]).all() and (it["done_at"] < 60).all()
    assert result.messages["error"].isna().all() and len(result.messages) == 2


async def _json_echo(message: Message, session: Session) -> AsyncIterator[Any]:
    yield message.data


@pytest.mark.parametrize("protocol", ["nbstream", "json", "text", "raw"])
async def test_scenarios_speak_each_protocol_of_an_nbstream_server(
        start_server: ServerFactory, protocol: str) -> None:
    handler: Any = "echo" if protocol == "nbstream" else _json_echo
    server = await start_server(handler, protocol=protocol)
    result = await nbstream.aload_test(server, scenario=echo_once, protocol=protocol,
                                       connections=2, iterations=3, progress=False)
    m = result.messages
    assert m["error"].isna().all() and len(m) == 6 and set(m["step"]) == {"echo"}
    assert result.checks.loc["echoed", "passes"] == 6


async def test_the_open_model_runs_iterations_on_a_timetable(feed_url: str) -> None:
    result = await nbstream.aload_test(feed_url, scenario=subscribe_and_leave, rate=40.0,
                                       duration=0.5, connections=4, protocol="json",
                                       progress=False)
    it = result.iterations
    assert list(it["iteration"]) == list(range(20)) and it["error"].isna().all()
    assert it["intended_at"].diff().dropna().between(0.0249, 0.0251).all()
    m = result.messages
    assert (m["latency_corrected"] >= m["latency"] - 1e-9).all()
    assert "open model, 40 it/s over 4 connections" in str(result)


async def test_scenario_results_survive_parquet_and_compare(feed_url: str,
                                                           tmp_path: Path) -> None:
    result = await nbstream.aload_test(feed_url, scenario=subscribe_and_leave, protocol="json",
                                       connections=2, iterations=2, data=SYMBOLS,
                                       progress=False)
    path = tmp_path / "run.parquet"
    result.to_parquet(path)
    back = nbstream.LoadResult.read_parquet(path)
    pd.testing.assert_frame_equal(back.messages, result.messages)
    pd.testing.assert_frame_equal(back.iterations, result.iterations)
    pd.testing.assert_frame_equal(back.checks, result.checks)
    pd.testing.assert_frame_equal(back.steps, result.steps)
    compared = result.compare(back)
    assert compared.loc["step.subscribe.p99", "change"] == 0
    assert compared.loc["check.price positive.passes", "a"] == 3  # AAA, BB, BAD, AAA
    figure = result.plot()
    assert len(figure.axes) == 6 and figure.axes[5].get_title() == "Checks"


async def test_a_flow_from_a_cell_runs_in_worker_processes(feed_url: str) -> None:
    symbol = "CELL"  # a variable of the cell: shipped with the function, by value

    async def cell_flow(user: User) -> None:
        replies = await user.request({"type": "subscribe", "symbol": symbol}, name="sub",
                                     until=lambda m: m.type == "quote")
        user.check("quoted", replies[-1].data["symbol"] == symbol)

    result = await nbstream.aload_test(feed_url, scenario=cell_flow, protocol="json",
                                       connections=4, iterations=3, processes=2,
                                       progress=False)
    assert result.messages["error"].isna().all() and len(result.messages) == 12
    assert result.checks.loc["quoted", "passes"] == 12
    assert list(result.iterations["connection"]) == [c for c in range(4) for _ in range(3)]
    assert result.parameters["processes"] == 2


def test_a_flow_that_cannot_be_shipped_is_named_before_anything_runs() -> None:
    lock = threading.Lock()

    async def locked(user: User) -> None:
        with lock:
            await asyncio.sleep(0)

    with pytest.raises(TypeError, match=r"scenario=.*locked cannot be shipped.*'lock' \(lock\)"):
        nbstream.start_load_test("ws://127.0.0.1:1/", scenario=locked, connections=2,
                                 processes=2, progress=False)


def test_scenario_options_are_checked() -> None:
    with pytest.raises(TypeError, match="async function"):
        nbstream.start_load_test(
            "ws://127.0.0.1:1/",
            scenario=lambda user: None,  # type: ignore[arg-type,return-value]  # on purpose
            progress=False)
    with pytest.raises(ValueError, match="iterations"):
        nbstream.start_load_test("ws://127.0.0.1:1/", iterations=3, progress=False)
    with pytest.raises(ValueError, match="unknown protocol"):
        nbstream.start_load_test("ws://127.0.0.1:1/", protocol="xml", progress=False)


async def test_the_plain_twins_work_in_a_flow(feed_url: str) -> None:
    async def plain(user: User) -> None:
        user.client.send({"type": "unsubscribe", "symbol": "Z"})
        user.check("acked", user.client.recv(timeout=TIMEOUT).type == "unsubscribed")

    result = await nbstream.aload_test(feed_url, scenario=plain, protocol="json",
                                       connections=1, iterations=2, progress=False)
    assert result.checks.loc["acked", "passes"] == 2
