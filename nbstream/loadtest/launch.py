"""Starting a load test: in the background (:func:`start_load_test`) or to the end.

:func:`start_load_test` returns a :class:`LoadTest` at once; the test runs on
nbstream's home loop (the kernel's loop in a notebook, nbstream's thread in a
script), next to any server started there. :func:`load_test` and
:func:`aload_test` start one, show a progress bar and wait for its
:class:`~nbstream.loadtest.result.LoadResult`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import html
import inspect
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Unpack

from nbstream import running, runtime
from nbstream.events import EventStream
from nbstream.loadtest.faults import FaultRun, check_schedule
from nbstream.loadtest.options import LoadTestKwargs, LoadTestOptions
from nbstream.loadtest.plan import LoadPlan
from nbstream.loadtest.progress import LoadProgress, ProgressBar, ProgressTracker
from nbstream.loadtest.recorder import Tick
from nbstream.loadtest.result import LoadResult
from nbstream.loadtest.workers import Execution, InlineRun, ProcessRun
from nbstream.validation import signature_of

if TYPE_CHECKING:
    from nbstream.loadtest.cluster import ClusterTarget
    from nbstream.server import Server

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[LoadProgress], None]


def execution_for(plan: LoadPlan, events: EventStream, cluster: ClusterTarget | None = None,
                  workers: int | None = None) -> Execution:
    """Where ``plan`` runs: this loop, worker processes, or the workers of a Dask cluster.

    Args:
        plan: Without a cluster, ``plan.processes`` picks this loop (1) or that many
            worker processes.
        events: Receives the FlowEvents of a run on this loop.
        cluster: A Dask client, cluster or scheduler address
            (:class:`~nbstream.loadtest.cluster.ClusterRun`); None: this machine.
        workers: With ``cluster``, how many of its workers to use (None: all).

    Raises:
        ImportError: for a cluster without dask.distributed installed.
    """
    if cluster is not None:
        from nbstream.loadtest.cluster import ClusterRun

        return ClusterRun(plan, cluster, workers)
    return InlineRun(plan, events) if plan.processes == 1 else ProcessRun(plan)



class LoadTest:
    """A load test running in the background. Start one with :func:`start_load_test`.

    Watch it with :meth:`progress` or :meth:`subscribe` (and :attr:`events` for every
    message of a one-process run), stop it with :meth:`cancel`, and get the
    :class:`LoadResult` with :meth:`result` or ``await`` :meth:`aresult`.
    """

    def __init__(self, plan: LoadPlan, loop: asyncio.AbstractEventLoop,
                 cluster: ClusterTarget | None = None, workers: int | None = None,
                 faults: FaultRun | None = None) -> None:
        self.plan = plan
        self.faults = faults
        """The fault proxy and schedule the load goes through (``faults=``), if any."""
        self.events = EventStream()
        """FlowEvents of a run on this loop (one process, no cluster): "open"/"close",
        "out" (c2s) and "in" (s2c), source "client", session_id = the connection index.
        Built only while subscribed."""
        self._loop = loop
        self._execution = execution_for(plan, self.events, cluster, workers)
        self._tracker = ProgressTracker(plan.planned)
        self._lock = threading.Lock()
        """Guards the tracker: ticks arrive on the loop, progress() may come from anywhere."""
        self._progress = self._tracker.snapshot()
        self._fresh = True
        self._subscribers: tuple[ProgressCallback, ...] = ()
        self._future: concurrent.futures.Future[LoadResult] = concurrent.futures.Future()
        self._task: asyncio.Task[LoadResult] | None = None
        running.track(self, "load test", LoadTest._cancel_for_all)

    # -- running ------------------------------------------------------------------------

    def _start(self) -> None:
        self._on_loop(self._launch)

    def _launch(self) -> None:
        self._task = self._loop.create_task(self._run(), name="nbstream-load-test")
        self._task.add_done_callback(self._settle)

    async def _run(self) -> LoadResult:
        faults = self.faults
        async with faults.applied() if faults else contextlib.nullcontext():
            parts = await self._execution.run(self._on_ticks)
        # "processes": the parts that ran (a cluster's workers are known only now)
        parameters = {**self.plan.parameters(), "processes": len(parts)}
        if faults is not None:
            parameters.update(faults.parameters(parts))
        return LoadResult.from_parts(parts, parameters)

    def _on_ticks(self, ticks: list[tuple[int, Tick]]) -> None:
        with self._lock:
            for source, tick in ticks:
                self._tracker.update(source, tick)
            self._fresh = False
        if self._subscribers:  # nobody watching: no snapshot to compute
            self._publish(self.progress())

    def _settle(self, task: asyncio.Task[LoadResult]) -> None:
        with self._lock:
            final = self._progress = self._tracker.snapshot(done=True)
            self._fresh = True
        if task.cancelled():
            self._future.cancel()
        elif (exc := task.exception()) is not None:
            self._future.set_exception(exc)
        else:
            self._future.set_result(task.result())
        self._publish(final)

    def _publish(self, progress: LoadProgress) -> None:
        for callback in self._subscribers:
            try:
                callback(progress)
            except Exception:
                logger.exception("load-test progress subscriber %r failed", callback)

    def _on_loop(self, callback: Callable[[], None]) -> None:
        if runtime.running_loop() is self._loop:
            callback()
        else:
            self._loop.call_soon_threadsafe(callback)

    # -- watching -----------------------------------------------------------------------

    def progress(self) -> LoadProgress:
        """The figures as of the latest tick (at most a tenth of a second old)."""
        with self._lock:
            if not self._fresh:
                self._progress = self._tracker.snapshot()
                self._fresh = True
            return self._progress

    def subscribe(self, callback: ProgressCallback) -> Callable[[], None]:
        """Call ``callback(LoadProgress)`` about ten times a second, and once when done.

        Callbacks run on the test's event loop: keep them short (update a widget or a
        counter). Subscribing to a finished test calls ``callback`` once, at once.

        Returns:
            The function that unsubscribes ``callback``.
        """
        self._subscribers = (*self._subscribers, callback)
        if self.done:
            callback(self._progress)

        def unsubscribe() -> None:
            self._subscribers = tuple(s for s in self._subscribers if s is not callback)

        return unsubscribe

    @property
    def done(self) -> bool:
        """True once the result is ready (or the test failed)."""
        return self._future.done()

    def cancel(self) -> None:
        """Stop the test: connections close, messages in flight become CANCELLED rows.

        The result of what ran so far is still returned by :meth:`result`.
        """
        self._on_loop(self._execution.cancel)

    def _cancel_for_all(self) -> str | None:
        if self.done:
            return None
        self.cancel()
        return f"load test of {self.plan.shown_url}: cancelled ({_describe(self.progress())})"

    # -- the result -----------------------------------------------------------------------

    def result(self, timeout: float | None = None) -> LoadResult:
        """Wait for the :class:`LoadResult` (also from a notebook cell).

        Raises:
            TimeoutError: if it is not ready within ``timeout`` seconds; the test goes on.
        """
        if runtime.running_loop() is self._loop:
            return runtime.run_sync(asyncio.wait_for(self.aresult(), timeout), self._loop)
        return self._future.result(timeout)

    async def aresult(self) -> LoadResult:
        """Await the :class:`LoadResult`; cancelling the await leaves the test running."""
        return await asyncio.shield(asyncio.wrap_future(self._future))

    # -- display ----------------------------------------------------------------------------

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"<LoadTest {self.plan.shown_url} {state}: {_describe(self.progress())}>"

    def _repr_html_(self) -> str:
        future = self._future
        if future.done() and not future.cancelled() and future.exception() is None:
            return future.result()._repr_html_()
        state = "done" if self.done else "running"
        return (f"<div><b>load test of {html.escape(self.plan.shown_url)}</b> — {state}: "
                f"{html.escape(_describe(self.progress()))}</div>")


def _describe(p: LoadProgress) -> str:
    total = f" / {p.planned:,}" if p.planned is not None else ""
    tail = f", p99 {p.p99 * 1e3:.1f} ms" if p.p99 is not None else ""
    return (f"{p.elapsed:.1f} s, {p.completed + p.errors:,}{total} messages, "
            f"{p.throughput:,.0f} msg/s{tail}, {p.errors:,} errors")


def start_load_test(target: str | Server, **options: Unpack[LoadTestKwargs]) -> LoadTest:
    """Start a load test in the background and return its :class:`LoadTest` at once.

    Takes the same arguments as :func:`load_test`. Watch it with ``.progress()`` or
    ``.subscribe(callback)``; collect it with ``.result()`` or ``await .aresult()``.

    Raises:
        TypeError, ValueError: naming an option that is unknown or out of range
            (nothing has started then).
        ImportError: for ``cluster`` without ``pip install 'nbstream[dask]'``.
    """
    opts = LoadTestOptions.from_kwargs(options)
    plan = opts.plan(target)
    run = None
    if opts.faults is not None:
        if opts.cluster is not None:
            raise ValueError("faults= sends the load through a proxy on 127.0.0.1, which a "
                             "cluster's workers cannot reach: drop cluster= or faults=")
        run = FaultRun(plan.url, check_schedule(opts.faults), runtime.home_loop())
        plan = dataclasses.replace(plan, url=run.url)
    test = LoadTest(plan, runtime.home_loop(), opts.cluster, opts.processes, run)
    if opts.progress:
        test.subscribe(ProgressBar(plan.planned, f"load test {plan.shown_url}"))
    test._start()
    return test


def load_test(target: str | Server, **options: Unpack[LoadTestKwargs]) -> LoadResult:
    """Load-test a WebSocket server and return the measurements as a :class:`LoadResult`.

    Works in a notebook cell and in a script. Network failures never raise: failed
    handshakes, timeouts, error envelopes and early closes are rows with an error code.

    Args:
        target: A ``ws://`` URL or a running :class:`nbstream.Server`.
        connections: Concurrent connections (1,000 and more are fine).
        messages: Messages per connection (closed model), or in total divided by
            ``connections`` (open model without ``duration``).
        rate: Messages per second in total: switches to the open model, where messages
            go out on a fixed timetable and ``latency_corrected`` counts from the time a
            message was due (no coordinated omission). None: the closed model, where
            each connection sends its next message once the previous one is answered.
        duration: Seconds to send for: open model ``rate * duration`` messages;
            closed model as many as fit (``messages`` is then ignored).
        ramp_up: Seconds over which the connections open (evenly spread).
        payload: The text of message ``i``: a template with ``{i}`` and
            ``{connection}`` (double literal braces), bytes (raw binary frames), or a
            function ``(connection, i) -> str | bytes`` (module-level for processes > 1).
        message_type: Envelope type sent (``"chat"``); a message is done at its
            ``end``/``error``/``pong``. None sends raw frames and measures until the
            first frame back, for any echo-like server.
        timeout: Seconds for a handshake and for each message's answer; an overdue
            message is a TIMEOUT row and its connection is closed.
        processes: Worker processes to spread the connections over (one process is
            limited by the GIL); results merge exactly. None: 1. With ``cluster``: how
            many of its workers to use (None: all of them).
        cluster: Run on the workers of a Dask cluster instead of this machine: a
            ``distributed.Client``, a ``LocalCluster`` (or any Dask cluster object) or a
            scheduler address (``"tcp://10.0.0.5:8786"``). One part of the connections
            per worker; rows and histograms merge as with ``processes``. Needs
            ``pip install 'nbstream[dask]'`` and nbstream on the workers.
        progress: Show a tqdm progress bar (a widget in a notebook).
        protocol: How frames become messages: "nbstream" (None: the default, "raw"
            when ``message_type=None``), "json", "text" or "raw" for servers nbstream
            did not write (the first frame back answers a message).
        type_key: ``protocol="json"``: the key holding a message's type.
        scenario: ``async def user_flow(user)`` to run instead of the built-in flow,
            ``iterations`` times per connection (or on the ``rate`` timetable):
            ``user.request``/``step``/``record`` time rows of ``messages`` with a
            ``step``, ``user.check`` counts checks (``LoadResult.steps``,
            ``.checks``, ``.iterations``). May come from a notebook cell, also with
            ``processes`` or ``cluster`` (shipped with cloudpickle).
        iterations: With ``scenario``: iterations per connection (default 1).
        data: With ``scenario``: a DataFrame or list whose rows ``user.data`` deals.
        transport: "auto" (picows when installed and able, else websockets),
            "websockets" or "picows" (``pip install 'nbstream[fast]'``).
        faults: Run the load through a fault proxy with this schedule:
            ``[(start_s, duration_s, fault, params), ...]``, e.g. ``(2, 3, "latency",
            {"ms": 100, "direction": "both"})`` (see docs/faults.md). The result's
            ``timeseries`` and ``plot()`` mark the windows; ``summary()`` adds figures
            inside and outside them.
        **connect_options: Passed to ``websockets.asyncio.client.connect`` (e.g.
            ``additional_headers``, ``subprotocols``, ``max_size``, ``compression``);
            any other keyword is refused by name.

    Returns:
        The :class:`LoadResult`: start with ``result.summary()``, then
        ``result.messages``, ``result.plot()``, ``result.to_parquet(path)``.
    """
    test = start_load_test(target, **options)
    try:
        return test.result()
    except BaseException:  # e.g. KeyboardInterrupt: stop the connections, then re-raise
        test.cancel()
        raise


async def aload_test(target: str | Server, **options: Unpack[LoadTestKwargs]) -> LoadResult:
    """Async twin of :func:`load_test`: ``result = await nbstream.aload_test(url)``."""
    test = start_load_test(target, **options)
    try:
        return await test.aresult()
    except BaseException:  # cancelled: stop the connections too
        test.cancel()
        raise


_TARGET = [inspect.Parameter("target", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
_twin: Any
for _twin in (start_load_test, load_test, aload_test):
    _twin.__signature__ = signature_of(_twin, LoadTestOptions, _TARGET,
                                       exclude={"connect_options"}, rest="connect_options")
