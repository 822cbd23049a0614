"""Where a plan runs: on this event loop, or split over worker processes.

Both executions return one :class:`~nbstream.loadtest.recorder.PartialResult` per
part and report live ticks through the same callback; ``LoadResult.from_parts``
merges parts the same way whatever produced them (another executor, e.g. Dask,
only has to run :func:`run_worker`'s job and hand back parts).

Worker processes are started with ``spawn`` (safe in a Jupyter kernel and with
threads), connect, then wait for a shared wall-clock start so that their rows share
one time axis.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.queues
import queue
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from typing import Any, Protocol

from nbstream.events import EventStream
from nbstream.loadtest.plan import LoadPlan, PlanPart
from nbstream.loadtest.recorder import PartialResult, Recorder, Tick
from nbstream.loadtest.runner import Runner

TICK_INTERVAL = 0.1
"""Seconds between live ticks (about ten progress updates a second)."""
START_TIMEOUT = 120.0
"""Seconds worker processes may take to start before the test gives up."""
START_MARGIN = 0.1
"""Seconds between the last worker reporting ready and the shared start."""

OnTick = Callable[[list[tuple[int, Tick]]], None]
"""Called on the event loop about ten times a second with new (part index, tick) pairs."""


class Execution(Protocol):
    """Runs the parts of a plan; ``await run(on_tick)``, ``cancel()`` from the loop."""

    async def run(self, on_tick: OnTick) -> list[PartialResult]: ...

    def cancel(self) -> None: ...


def execution_for(plan: LoadPlan, events: EventStream) -> Execution:
    """The execution for ``plan.processes``: this loop for 1, worker processes above."""
    return InlineRun(plan, events) if plan.processes == 1 else ProcessRun(plan)


async def _tick_until_done(task: asyncio.Task[None], tick: Callable[[], None]) -> None:
    while not task.done():
        await asyncio.wait({task}, timeout=TICK_INTERVAL)
        tick()
    task.result()  # a bug in the runner surfaces here; network errors are rows


class InlineRun:
    """The whole plan on the current event loop (``processes=1``).

    ``events`` receives a FlowEvent per connection opened or closed and per message
    in or out, built only while someone is subscribed.
    """

    def __init__(self, plan: LoadPlan, events: EventStream) -> None:
        self.plan = plan
        self.events = events
        self._runner: Runner | None = None
        self._cancelled = False

    async def run(self, on_tick: OnTick) -> list[PartialResult]:
        recorder = Recorder()
        self._runner = Runner(self.plan.split(1)[0], recorder, self.events)
        if self._cancelled:
            self._runner.cancel()
        task = asyncio.create_task(self._runner.run())
        await _tick_until_done(task, lambda: on_tick([(0, recorder.tick())]))
        return [recorder.to_part(0)]

    def cancel(self) -> None:
        self._cancelled = True
        if self._runner is not None:
            self._runner.cancel()


@dataclass(frozen=True)
class _Channel:
    """What the parent and its worker processes share."""

    reports: multiprocessing.queues.Queue[tuple[str, int, Tick | None]]
    start: Any  # multiprocessing.synchronize.Event (a context's Event)
    stop: Any
    start_at: Synchronized[float]


_channel: _Channel | None = None
"""Set in each worker process by :func:`_init_worker`."""


def _init_worker(channel: _Channel) -> None:
    global _channel
    _channel = channel


def run_worker(part: PlanPart) -> PartialResult:
    """Entry point of a worker process: report ready, wait for the start, run ``part``."""
    channel = _channel
    if channel is None:
        raise RuntimeError("run_worker runs in a process started by ProcessRun")
    channel.reports.put(("ready", part.index, None))
    if not channel.start.wait(START_TIMEOUT):
        raise TimeoutError("the load test never started")
    return asyncio.run(_run_part(part, channel))


async def _run_part(part: PlanPart, channel: _Channel) -> PartialResult:
    started_at = channel.start_at.value
    await asyncio.sleep(max(0.0, started_at - time.time()))
    clock = time.perf_counter_ns
    t0 = clock() - round((time.time() - started_at) * 1e9)
    recorder = Recorder(clock, started_at, t0)
    runner = Runner(part, recorder)
    if channel.stop.is_set():  # cancelled while the workers were starting
        runner.cancel()

    def tick() -> None:
        channel.reports.put(("tick", part.index, recorder.tick()))
        if channel.stop.is_set():
            runner.cancel()

    await _tick_until_done(asyncio.create_task(runner.run()), tick)
    channel.reports.put(("done", part.index, recorder.tick()))
    return recorder.to_part(part.index)


class ProcessRun:
    """The plan split over ``plan.processes`` spawned worker processes.

    Worker processes report no FlowEvents; only counters and latencies travel back
    while the test runs, rows and histograms once at the end.
    """

    def __init__(self, plan: LoadPlan) -> None:
        self.plan = plan
        self._stop: Any = None
        self._cancelled = False

    async def run(self, on_tick: OnTick) -> list[PartialResult]:
        context = multiprocessing.get_context("spawn")
        channel = _Channel(context.Queue(), context.Event(), context.Event(),
                           context.Value("d", 0.0))
        self._stop = channel.stop
        if self._cancelled:
            channel.stop.set()
        parts = self.plan.split()
        pool = ProcessPoolExecutor(len(parts), mp_context=context,
                                   initializer=_init_worker, initargs=(channel,))
        futures: list[asyncio.Future[PartialResult]] = []
        try:
            futures = [asyncio.wrap_future(pool.submit(run_worker, part)) for part in parts]
            await self._start(channel, futures)
            finished: set[int] = set()
            while not all(f.done() for f in futures):
                await asyncio.wait(futures, timeout=TICK_INTERVAL)
                _drain(channel, on_tick, finished)
            results = [f.result() for f in futures]  # a crashed worker raises here
            await _until(lambda: _drain(channel, on_tick, finished) >= len(parts))
            return results
        finally:
            channel.stop.set()
            channel.start.set()  # workers still waiting see stop and run nothing
            for future in futures:
                future.cancel()
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)

    async def _start(self, channel: _Channel,
                     futures: list[asyncio.Future[PartialResult]]) -> None:
        ready = 0

        def count_ready() -> int:
            nonlocal ready
            while True:
                try:
                    kind, _, _ = channel.reports.get_nowait()
                except queue.Empty:
                    break
                ready += kind == "ready"
            failed = next((f for f in futures if f.done()), None)
            if failed is not None:
                failed.result()  # a worker died while starting: raise its error
                raise RuntimeError("a load-test worker finished before the start")
            return ready

        if not await _until(lambda: count_ready() >= len(futures), START_TIMEOUT):
            raise TimeoutError(f"load-test workers did not start within {START_TIMEOUT} s")
        channel.start_at.value = time.time() + START_MARGIN
        channel.start.set()

    def cancel(self) -> None:
        self._cancelled = True
        if self._stop is not None:
            self._stop.set()


def _drain(channel: _Channel, on_tick: OnTick, finished: set[int]) -> int:
    """Hand every queued tick to ``on_tick``; returns how many workers reported done."""
    ticks: list[tuple[int, Tick]] = []
    while True:
        try:
            kind, index, tick = channel.reports.get_nowait()
        except queue.Empty:
            break
        if tick is not None:
            ticks.append((index, tick))
        if kind == "done":
            finished.add(index)
    if ticks:
        on_tick(ticks)
    return len(finished)


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` every 20 ms for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True

