"""Throttle: coalesces pokes, paces flushes, re-runs on request, stops on close."""

from __future__ import annotations

import asyncio
import itertools
import threading

import pytest

from nbstream.views.throttle import Throttle

INTERVAL = 0.05


async def test_a_burst_of_pokes_is_one_flush() -> None:
    flushes: list[float] = []
    loop = asyncio.get_running_loop()
    throttle = Throttle(loop, lambda: flushes.append(loop.time()), INTERVAL)
    for _ in range(10_000):
        throttle.poke()
    await asyncio.sleep(INTERVAL)
    assert len(flushes) == 1 == throttle.flushes


async def test_flushes_are_at_least_an_interval_apart_under_steady_pokes() -> None:
    flushes: list[float] = []
    loop = asyncio.get_running_loop()
    throttle = Throttle(loop, lambda: flushes.append(loop.time()), INTERVAL)
    started = loop.time()
    while loop.time() - started < 10 * INTERVAL:
        throttle.poke()
        await asyncio.sleep(0)
    throttle.close()
    gaps = [b - a for a, b in itertools.pairwise(flushes)]
    assert 5 <= len(flushes) <= 11
    assert min(gaps) >= INTERVAL * 0.9


async def test_a_flush_that_asks_runs_again_without_a_poke() -> None:
    answers = iter([INTERVAL, INTERVAL, None])
    throttle = Throttle(asyncio.get_running_loop(), lambda: next(answers), INTERVAL)
    throttle.poke()
    await asyncio.sleep(5 * INTERVAL)
    assert throttle.flushes == 3


async def test_close_cancels_a_pending_flush_and_ignores_later_pokes() -> None:
    throttle = Throttle(asyncio.get_running_loop(), lambda: None, INTERVAL)
    throttle.poke()
    throttle.close()
    throttle.close()
    throttle.poke()
    await asyncio.sleep(2 * INTERVAL)
    assert throttle.flushes == 0


async def test_a_poke_from_another_thread_flushes_on_the_loop() -> None:
    loop = asyncio.get_running_loop()
    seen: list[bool] = []
    done = asyncio.Event()

    def flush() -> None:
        seen.append(threading.current_thread() is threading.main_thread())
        done.set()

    throttle = Throttle(loop, flush, INTERVAL)
    thread = threading.Thread(target=throttle.poke)
    thread.start()
    thread.join()
    await asyncio.wait_for(done.wait(), 1.0)
    assert seen == [True]


async def test_a_failing_flush_is_logged_and_the_next_poke_flushes_again(
        caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def flush() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    throttle = Throttle(asyncio.get_running_loop(), flush, INTERVAL)
    throttle.poke()
    await asyncio.sleep(INTERVAL / 2)
    throttle.poke()
    await asyncio.sleep(2 * INTERVAL)
    assert len(calls) == 2
    assert "failed to refresh" in caplog.text


async def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Throttle(asyncio.get_running_loop(), lambda: None, 0)
