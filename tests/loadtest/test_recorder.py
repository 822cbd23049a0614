"""Rows, ticks and histograms from a recorder driven by a fake clock (no sockets)."""

from __future__ import annotations

import math

import numpy as np

from nbstream.loadtest.errors import LocalError, closed_error, http_error
from nbstream.loadtest.recorder import (
    TICK_SAMPLE,
    Recorder,
    decode_histogram,
    histogram_of,
)

MS = 1_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000 * MS

    def __call__(self) -> int:
        return self.now


def record_three(clock: FakeClock) -> Recorder:
    """Connection 0: one success and one error envelope; connection 1: never connected."""
    recorder = Recorder(clock, started_at=1_700_000_000.0)
    conn = recorder.connection(0)
    conn.started_ns, conn.connected_ns = clock.now, clock.now + 2 * MS
    recorder.connection(1).error = LocalError.CONNECTION_REFUSED
    clock.now += 10 * MS
    ok = recorder.message(0, 0, clock.now - 1 * MS, clock.now, 40)
    ok.first_ns, ok.replies, ok.bytes_in = clock.now + 3 * MS, 2, 90
    clock.now += 5 * MS
    recorder.finish(ok, clock.now)
    failed = recorder.message(0, 1, clock.now, clock.now, 41)
    clock.now += 1 * MS
    recorder.finish(failed, clock.now, "RATE_LIMITED")
    recorder.not_sent(1, 0)
    return recorder


def test_columns_are_seconds_since_the_start_with_nan_for_never() -> None:
    clock = FakeClock()
    part = record_three(clock).to_part(0)
    m = part.messages
    assert list(m["seq"]) == [0, 1, 0]
    assert m["sent_at"][0] == 0.010
    assert math.isclose(m["intended_at"][0], 0.009)
    assert math.isclose(m["latency"][0], 0.005) and math.isclose(m["ttft"][0], 0.003)
    assert math.isclose(m["latency_corrected"][0], 0.006)
    assert math.isclose(m["latency"][1], 0.001)  # an error envelope answered it
    assert math.isnan(m["sent_at"][2]) and math.isnan(m["latency"][2])
    assert list(m["error"]) == [None, "RATE_LIMITED", "NOT_SENT"]
    c = part.connections
    assert math.isclose(c["connect_latency"][0], 0.002) and math.isnan(c["connect_latency"][1])
    assert list(c["error"]) == [None, "CONNECTION_REFUSED"]
    assert part.started_at == 1_700_000_000.0


def test_histograms_hold_successes_only() -> None:
    part = record_three(FakeClock()).to_part(0)
    latency = decode_histogram(part.histograms["latency"])
    assert latency.get_total_count() == 1
    assert latency.get_value_at_percentile(100) == latency.get_highest_equivalent_value(5_000)
    assert decode_histogram(part.histograms["connect"]).get_total_count() == 1


def test_ticks_report_counters_and_new_successes_once() -> None:
    clock = FakeClock()
    recorder = record_three(clock)
    tick = recorder.tick()
    assert (tick.sent, tick.completed, tick.errors, tick.in_flight) == (2, 1, 2, 0)
    assert tick.latencies == [0.005] and tick.done_at == [0.015]
    recorder.message(0, 2, clock.now, clock.now, 10)
    again = recorder.tick()
    assert again.latencies == [] and again.in_flight == 1 and again.sent == 3


def test_a_busy_tick_reports_an_even_sample_of_its_successes() -> None:
    clock = FakeClock()
    recorder = Recorder(clock)
    for seq in range(5 * TICK_SAMPLE + 1):
        record = recorder.message(0, seq, clock.now, clock.now, 10)
        clock.now += MS
        recorder.finish(record, clock.now + seq, "TIMEOUT" if seq % 2 else None)
    tick = recorder.tick()
    successes = 5 * TICK_SAMPLE // 2 + 1
    assert (tick.completed, tick.errors) == (successes, 5 * TICK_SAMPLE // 2)
    assert TICK_SAMPLE <= len(tick.latencies) < 2 * TICK_SAMPLE
    assert math.isclose(tick.weight * len(tick.latencies), successes)
    # every other success: messages 0, 4, 8 (their latency is 1 ms + seq ns)
    assert np.allclose(tick.latencies[:3], [0.001, 0.001000004, 0.001000008], rtol=0, atol=1e-12)
    assert recorder.tick().latencies == []


def test_merged_histograms_equal_the_histogram_of_all_rows() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.lognormal(-6, 1, 500), rng.lognormal(-5, 2, 300)
    merged = decode_histogram(histogram_of(a).encode())
    merged.add(histogram_of(b))
    assert merged.equals(histogram_of(np.concatenate([a, b])))
    assert merged.get_total_count() == 800


def test_error_codes() -> None:
    assert http_error(503) == "HTTP_503"
    assert closed_error(None) == "CLOSED_1006" and closed_error(1013) == "CLOSED_1013"
