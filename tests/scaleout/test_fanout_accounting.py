"""Counting what fan-out lost, telling a silent subscription, logging repeats once: no sockets."""

from __future__ import annotations

import logging

import pytest

from nbstream.backplane.logthrottle import ThrottledLog
from nbstream.backplane.tracking import FanoutWatch, GapCounter, Sequencer


def test_sequencer_settles_only_what_is_done_in_order() -> None:
    numbers = Sequencer()
    assert numbers.settled == 0
    first, second, third = numbers.next(), numbers.next(), numbers.next()
    assert (first, second, third, numbers.last) == (1, 2, 3, 3)
    numbers.done(second)
    assert numbers.settled == 0  # 1 is still in flight: a heartbeat must not claim 2
    numbers.done(first)
    assert numbers.settled == 2
    numbers.done(third)
    assert numbers.settled == 3


def test_gap_counter_counts_what_never_arrived_at_each_heartbeat() -> None:
    gaps = GapCounter(forget_after=60.0)
    assert gaps.beat("a", 10, now=0.0) == 0  # first contact: what came before is unknown
    for seq in (11, 13, 14):
        gaps.received("a", seq, now=1.0)
    assert gaps.beat("a", 13, now=1.0) == 1  # 12 is missing; 14 is not settled yet
    assert gaps.beat("a", 13, now=2.0) == 0
    assert gaps.beat("a", 16, now=3.0) == 2  # 15 and 16
    gaps.received("b", 5, now=3.0)  # first contact through a publication
    assert gaps.beat("b", 5, now=3.0) == 0
    assert gaps.missed == 3
    assert gaps.beat("c", 1, now=100.0) == 0  # a and b, silent for over a minute, forgotten
    assert gaps.beat("a", 40, now=101.0) == 0


def test_watch_calls_a_subscription_silent_only_when_a_sent_beat_is_overdue() -> None:
    watch = FanoutWatch(deadline=3.0)
    assert not watch.working(0.0) and watch.silence(0.0) == 0.0
    watch.subscribed(0.0)
    assert watch.working(100.0)  # no heartbeat sent: nothing is overdue
    watch.sending(1.0)
    watch.beat_back(1.0, now=1.002)
    assert watch.lag == pytest.approx(0.002) and watch.silence(2.0) == pytest.approx(0.998)
    watch.sending(2.0)
    watch.sending(3.0)
    watch.not_sent(3.0)  # Redis refused it: it cannot come back
    assert not watch.silent(5.0)
    assert watch.silent(5.1) and not watch.working(5.1)
    watch.unsubscribed()
    watch.subscribed(6.0)  # a new subscription starts with nothing overdue
    assert watch.working(6.0) and watch.silence(6.0) == pytest.approx(5.0 - 0.002)


def test_a_beat_back_before_its_publish_returns_counts() -> None:
    watch = FanoutWatch(deadline=3.0)
    watch.subscribed(0.0)
    watch.sending(1.0)  # stamped before the PUBLISH; the echo may beat its reply
    watch.beat_back(1.0, now=1.001)
    assert not watch.silent(10.0)


def test_throttled_log_says_once_per_interval_how_many_it_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    log = ThrottledLog(logging.getLogger("test.throttle"), interval=30.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        assert log.error("refused", "Redis refused %d write(s)", 5)
        for _ in range(1000):
            now[0] += 0.01
            assert not log.error("refused", "Redis refused %d write(s)", 5)
        assert log.warning("other", "another topic")  # topics are independent
        now[0] = 31.0
        assert log.error("refused", "Redis refused %d write(s)", 7)
    assert [r.getMessage() for r in caplog.records] == [
        "Redis refused 5 write(s)", "another topic",
        "Redis refused 7 write(s) (1000 more like this in the last 31 s)"]
