"""Where a plan runs: on this event loop, over worker processes, or on a Dask cluster.

Every execution returns one :class:`~nbstream.loadtest.recorder.PartialResult` per
part and reports live ticks through the same callback; ``LoadResult.from_parts``
merges parts the same way whatever produced them.

Worker processes and Dask workers run the same job, :func:`run_part`: report ready
on a :class:`Channel`, wait for the shared wall-clock start (so that their rows share
one time axis), run the part while ticking, hand back the part. :func:`run_parts` is
the run's side for both: start the workers together, relay ticks, pass on a cancel.
Worker processes are started with ``spawn`` (safe in a Jupyter kernel and with
threads); the Dask execution lives in :mod:`nbstream.loadtest.cluster`.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import Literal, Protocol

from nbstream.events import EventStream
from nbstream.loadtest.plan import LoadPlan, PlanPart
from nbstream.loadtest.recorder import PartialResult, Recorder, Tick
from nbstream.loadtest.runner import Runner
from nbstream.runtime import run_owned

TICK_INTERVAL = 0.1
"""Seconds between live ticks (about ten progress updates a second)."""
START_TIMEOUT = 120.0
"""Seconds workers may take to start before the test gives up."""
START_MARGIN = 0.1
"""Seconds between the last worker reporting ready and the shared start."""
START_POLL = 0.02
"""Seconds between looks at the reports while the workers start or finish."""
DONE_TIMEOUT = 5.0
"""Seconds to wait for the last ticks once every part is back."""

OnTick = Callable[[list[tuple[int, Tick]]], None]
"""Called on the event loop about ten times a second with new (part index, tick) pairs."""


class Execution(Protocol):
    """Runs the parts of a plan; ``await run(on_tick)``, ``cancel()`` from the loop."""

    async def run(self, on_tick: OnTick) -> list[PartialResult]: ...

    def cancel(self) -> None: ...


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


ReportKind = Literal["ready", "tick", "done"]
Report = tuple[ReportKind, int, Tick | None]
"""What a worker's job tells its run: ready to start, a live tick, or done (with its
last tick), and the index of its part."""


class _Queue(Protocol):
    def put(self, item: Report, /) -> None: ...

    def get_nowait(self) -> Report: ...


class _Flag(Protocol):
    def set(self) -> None: ...

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class _Cell(Protocol):
    value: float


@dataclass(frozen=True)
class Channel:
    """What a run and its workers share: reports up; the start time and a stop flag down.

    The worker's side (:meth:`report`, :meth:`wait_start`, :meth:`stopped`) is used by
    :func:`run_part`; the run's side (:meth:`drain`, :meth:`release`, :meth:`halt`) by
    a :class:`Hub`. Build it with :meth:`for_processes` to hand to spawned processes,
    or with :meth:`in_process` where the run reaches it another way (a Dask worker's
    channel is driven through ``Client.run``).
    """

    reports: _Queue
    start: _Flag
    stop: _Flag
    start_at: _Cell

    @classmethod
    def for_processes(cls, context: BaseContext) -> Channel:
        """A channel of ``context``'s primitives; pass it to the processes it starts."""
        return cls(context.Queue(), context.Event(), context.Event(), context.Value("d", 0.0))

    @classmethod
    def in_process(cls) -> Channel:
        """A channel for jobs running on threads of this process."""
        # c_double: a float cell with a .value, as multiprocessing's Value has
        return cls(queue.SimpleQueue(), threading.Event(), threading.Event(), ctypes.c_double())

    def report(self, kind: ReportKind, index: int, tick: Tick | None = None) -> None:
        """Tell the run about part ``index`` (the worker's side)."""
        self.reports.put((kind, index, tick))

    def wait_start(self, timeout: float) -> float | None:
        """Wait for the run to release its workers: the shared start time (``time.time()``
        clock), or None if it did not within ``timeout`` seconds."""
        return self.start_at.value if self.start.wait(timeout) else None

    def stopped(self) -> bool:
        """True once the run asked its workers to stop."""
        return self.stop.is_set()

    def drain(self) -> list[Report]:
        """Every report not read yet, oldest first (the run's side)."""
        reports = []
        while True:
            try:
                reports.append(self.reports.get_nowait())
            except queue.Empty:
                return reports

    def release(self, at: float) -> None:
        """Let the workers start, all at wall-clock time ``at``."""
        self.start_at.value = at
        self.start.set()

    def halt(self) -> None:
        """Ask the workers to stop; their messages in flight become CANCELLED rows."""
        self.stop.set()


def run_part(part: PlanPart, channel: Channel) -> PartialResult:
    """The job a worker runs: report ready, wait for the shared start, run ``part``.

    Blocks its thread until the part is done; run it in a thread or process of its
    own, and hand its result to the run (see :func:`run_parts`).

    Raises:
        TimeoutError: if the run never released its workers.
    """
    channel.report("ready", part.index)
    started_at = channel.wait_start(START_TIMEOUT)
    if started_at is None:
        raise TimeoutError("the load test never started")
    return run_owned(_run_part(part, channel, started_at))


async def _run_part(part: PlanPart, channel: Channel, started_at: float) -> PartialResult:
    await asyncio.sleep(max(0.0, started_at - time.time()))
    clock = time.perf_counter_ns
    t0 = clock() - round((time.time() - started_at) * 1e9)
    recorder = Recorder(clock, started_at, t0)
    runner = Runner(part, recorder)
    if channel.stopped():  # cancelled while the workers were starting
        runner.cancel()

    def tick() -> None:
        channel.report("tick", part.index, recorder.tick())
        if channel.stopped():
            runner.cancel()

    await _tick_until_done(asyncio.create_task(runner.run()), tick)
    channel.report("done", part.index, recorder.tick())
    return recorder.to_part(part.index)


class Hub(Protocol):
    """The run's end of its workers' channels, awaited on the run's event loop."""

    async def reports(self) -> list[Report]:
        """The reports of every worker not read yet."""
        ...

    async def start(self, at: float) -> None:
        """Release every worker, to start at wall-clock time ``at``."""
        ...

    async def stop(self) -> None:
        """Ask every worker to stop."""
        ...


async def run_parts(futures: Sequence[asyncio.Future[PartialResult]], hub: Hub,
                    on_tick: OnTick, cancelled: Callable[[], bool]) -> list[PartialResult]:
    """Start the workers of ``futures`` together, relay their ticks, return their parts.

    Each future is one worker running :func:`run_part` on a channel that ``hub``
    reaches. Once ``cancelled()`` is true the workers are asked to stop (their rows
    are kept). On the way out every worker is told to stop; the caller then cancels
    what is left of its futures and frees its workers.

    Raises:
        TimeoutError: if the workers are not all ready within :data:`START_TIMEOUT`.
        Exception: the error of a worker's job (network errors are rows, not errors).
    """
    ready: set[int] = set()
    finished: set[int] = set()
    halted = False

    async def poll() -> None:
        nonlocal halted
        if cancelled() and not halted:
            halted = True
            await hub.stop()
        ticks: list[tuple[int, Tick]] = []
        for kind, index, tick in await hub.reports():
            if kind == "ready":
                ready.add(index)
            elif kind == "done":
                finished.add(index)
            if tick is not None:
                ticks.append((index, tick))
        if ticks:
            on_tick(ticks)

    try:
        deadline = time.monotonic() + START_TIMEOUT
        while len(ready) < len(futures):
            failed = next((f for f in futures if f.done()), None)
            if failed is not None:
                failed.result()  # a worker died while starting: raise its error
                raise RuntimeError("a load-test worker finished before the start")
            if time.monotonic() > deadline:
                raise TimeoutError(f"load-test workers did not start within {START_TIMEOUT} s")
            await asyncio.sleep(START_POLL)
            await poll()
        await hub.start(time.time() + START_MARGIN)
        while not all(f.done() for f in futures):
            await asyncio.wait(futures, timeout=TICK_INTERVAL)
            await poll()
        results = [f.result() for f in futures]  # a crashed worker raises here
        deadline = time.monotonic() + DONE_TIMEOUT
        while len(finished) < len(futures) and time.monotonic() < deadline:
            await asyncio.sleep(START_POLL)  # the last ticks may trail the results
            await poll()
        return results
    finally:
        await hub.stop()
        await hub.start(time.time())  # workers still waiting see stop and run nothing


class _LocalHub:
    """The run's end of a channel it holds itself (worker processes)."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    async def reports(self) -> list[Report]:
        return self.channel.drain()

    async def start(self, at: float) -> None:
        self.channel.release(at)

    async def stop(self) -> None:
        self.channel.halt()


_channel: Channel | None = None
"""Set in each worker process by :func:`_init_worker`."""


def _init_worker(channel: Channel) -> None:
    global _channel
    _channel = channel


def run_worker(part: PlanPart) -> PartialResult:
    """Entry point of a worker process started by :class:`ProcessRun`."""
    if _channel is None:
        raise RuntimeError("run_worker runs in a process started by ProcessRun")
    return run_part(part, _channel)


class ProcessRun:
    """The plan split over ``plan.processes`` spawned worker processes.

    Worker processes report no FlowEvents; only counters and latencies travel back
    while the test runs, rows and histograms once at the end.
    """

    def __init__(self, plan: LoadPlan) -> None:
        self.plan = plan
        self._cancelled = False

    async def run(self, on_tick: OnTick) -> list[PartialResult]:
        context = multiprocessing.get_context("spawn")
        channel = Channel.for_processes(context)
        parts = self.plan.split()
        pool = ProcessPoolExecutor(len(parts), mp_context=context,
                                   initializer=_init_worker, initargs=(channel,))
        futures: list[asyncio.Future[PartialResult]] = []
        try:
            futures = [asyncio.wrap_future(pool.submit(run_worker, part)) for part in parts]
            return await run_parts(futures, _LocalHub(channel), on_tick,
                                   lambda: self._cancelled)
        finally:
            for future in futures:
                future.cancel()
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)

    def cancel(self) -> None:
        self._cancelled = True
