"""What every peer test checks of a load test against a server nbstream did not write:
raw frames, and a scripted two-step scenario with checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import nbstream
from nbstream.loadtest import User

Scenario = Callable[[User], Awaitable[None]]


async def raw_load_test(url: str, payload: Any, connections: int = 4,
                        messages: int = 25) -> nbstream.LoadResult:
    """``load_test(url, message_type=None)``: every message answered, none failed."""
    result = await nbstream.aload_test(url, connections=connections, messages=messages,
                                       message_type=None, payload=payload, progress=False,
                                       timeout=10)
    m = result.messages
    assert len(m) == connections * messages and m["error"].isna().all(), (
        m["error"].value_counts())
    assert (m["replies"] == 1).all() and (m["latency"] > 0).all()
    assert (result.connections["close_code"] == 1000).all()
    assert result.summary()["value"]["completed"] == connections * messages
    return result


async def two_step_load_test(url: str, scenario: Scenario, protocol: str,
                             steps: list[str], checks: list[str], connections: int = 3,
                             iterations: int = 4) -> nbstream.LoadResult:
    """``load_test(url, scenario=...)``: every step timed without an error, every check
    passed, once per iteration of every user."""
    result = await nbstream.aload_test(url, scenario=scenario, protocol=protocol,
                                       connections=connections, iterations=iterations,
                                       progress=False, timeout=10)
    runs = connections * iterations
    assert result.iterations["error"].isna().all(), result.iterations["error"].value_counts()
    table = result.steps
    assert sorted(table.index) == sorted(steps)
    assert (table["count"] == runs).all() and (table["errors"] == 0).all(), table
    assert (table["p50"] > 0).all() and (table["p50"] <= table["max"]).all()
    verdicts = result.checks
    assert sorted(verdicts.index) == sorted(checks)
    assert (verdicts["passes"] == runs).all() and (verdicts["fails"] == 0).all(), verdicts
    assert result.parameters["protocol"] == protocol
    return result
