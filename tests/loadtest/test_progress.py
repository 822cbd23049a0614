"""Live snapshots from the ticks of several workers."""

from __future__ import annotations

import numpy as np
import pytest

from nbstream.loadtest.progress import ProgressTracker, weighted_percentiles
from nbstream.loadtest.recorder import Tick


def tick(at: float, completed: int, done_at: list[float], latencies: list[float],
         weight: float = 1.0) -> Tick:
    return Tick(at, sent=completed + 1, completed=completed, errors=1, in_flight=1,
                connections_open=2, done_at=done_at, latencies=latencies, weight=weight)


def test_snapshot_before_any_tick_is_empty() -> None:
    snapshot = ProgressTracker(100).snapshot()
    assert (snapshot.sent, snapshot.p99, snapshot.planned, snapshot.done) == (0, None, 100, False)


def test_counters_add_up_and_the_window_is_the_last_second() -> None:
    tracker = ProgressTracker(None)
    tracker.update(0, tick(2.0, 300, [0.5, 1.2, 1.9], [0.5, 0.010, 0.030]))
    tracker.update(1, tick(2.05, 200, [1.5, 2.04], [0.020, 0.040]))
    snapshot = tracker.snapshot(done=True)
    assert (snapshot.sent, snapshot.completed, snapshot.errors) == (502, 500, 2)
    assert (snapshot.in_flight, snapshot.connections_open) == (2, 4)
    assert snapshot.elapsed == 2.05 and snapshot.done
    # window (1.0, 2.0]: the oldest worker's tick ends it; 0.5 is too old, 2.04 too new
    assert snapshot.throughput == pytest.approx(3.0)
    assert snapshot.p50 == pytest.approx(0.020)
    assert snapshot.p99 == pytest.approx(0.030)  # a latency that occurred
    tracker.update(1, tick(2.1, 201, [], []))
    assert tracker.snapshot().throughput == pytest.approx(3.0)


def test_sampled_ticks_count_every_success_they_stand_for() -> None:
    tracker = ProgressTracker(None)
    tracker.update(0, tick(2.0, 5000, [1.5, 1.6], [0.010, 0.010], weight=1000.0))
    tracker.update(1, tick(2.0, 3, [1.7, 1.8, 1.9], [0.050, 0.060, 0.070]))
    snapshot = tracker.snapshot()
    assert snapshot.throughput == pytest.approx(2003.0)
    # the 2,000 fast messages weigh 2,000: the three slow ones are the top 0.15%
    assert snapshot.p50 == pytest.approx(0.010) and snapshot.p99 == pytest.approx(0.010)


@pytest.mark.skipif(int(np.__version__.split(".")[0]) < 2, reason="numpy 2 has weights=")
def test_weighted_percentiles_read_as_numpys_inverted_cdf() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        values = rng.lognormal(-5, 1, int(rng.integers(1, 300)))
        weights = rng.choice([1.0, 7.0, 250.0], len(values))
        percents = (0, 1, 50, 90, 99, 99.9, 100)
        assert weighted_percentiles(values, weights, percents) == list(np.percentile(
            values, percents, weights=weights, method="inverted_cdf"))
