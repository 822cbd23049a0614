"""Thresholds: the verdict on a run's summary (no I/O), and which connections failed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nbstream.loadtest.thresholds import Thresholds, failed_connections


def summary(connections: int = 10, connections_failed: int = 0, requests: int = 100,
            errors: int = 0, p99: float = 0.02) -> dict[str, float]:
    return {"connections": connections, "connections_failed": connections_failed,
            "requests": requests, "errors": errors, "latency_corrected_p99": p99}


def test_by_default_any_failure_fails_the_run() -> None:
    assert Thresholds().violations(summary()) == []
    assert Thresholds().violations(summary(errors=1)) == [
        "1 of 100 messages failed (1 %; allowed 0 %)"]
    assert Thresholds().violations(summary(connections_failed=9)) == [
        "9 of 10 connections failed (90 %; allowed 0 %)"]


def test_an_error_rate_is_allowed_up_to_the_threshold() -> None:
    allowed = Thresholds(max_error_rate=0.01)
    assert allowed.violations(summary(errors=1)) == []
    assert allowed.violations(summary(errors=2)) == [
        "2 of 100 messages failed (2 %; allowed 1 %)"]
    assert Thresholds(max_error_rate=1.0).violations(
        summary(connections_failed=10, errors=100, p99=math.nan)) == []


def test_p99_is_held_to_its_limit() -> None:
    limit = Thresholds(max_p99=0.05)
    assert limit.violations(summary(p99=0.05)) == []
    assert limit.violations(summary(p99=0.0812)) == ["p99 latency 81.2 ms is above 50 ms"]
    assert limit.violations(summary(p99=math.nan, errors=0)) == [
        "no message completed, so p99 latency cannot be checked"]


@pytest.mark.parametrize("options", [{"max_error_rate": -0.1}, {"max_error_rate": 1.5},
                                     {"max_error_rate": math.nan}, {"max_p99": 0.0},
                                     {"max_p99": math.inf}])
def test_thresholds_out_of_range_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        Thresholds(**options)


def test_a_connection_refused_after_its_handshake_failed() -> None:
    nan = np.nan
    connections = pd.DataFrame({
        "connected_at": [nan, 0.1, 0.1, 0.1, 0.1, 0.1],
        "completed": [0, 0, 3, 0, 0, 0],
        "error": pd.array(["CONNECTION_REFUSED", "TOO_MANY_CONNECTIONS", "CLOSED_1011",
                           "TIMEOUT", None, "CLOSED_1006"], dtype="string"),
    })
    assert failed_connections(connections).tolist() == [True, True, False, False, False, True]
