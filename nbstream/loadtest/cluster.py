"""Load generation on a Dask cluster: the parts of a plan run as tasks on its workers.

``load_test(url, cluster=client)`` splits the plan into one part per worker and pins
each part to its worker (``workers=[address]``), where :func:`load_test_part` runs the
same job as a worker process (:func:`~nbstream.loadtest.workers.run_part`) on a worker
thread. The run reaches each worker's :class:`~nbstream.loadtest.workers.Channel`
with ``Client.run``: it collects reports every tick (one scheduler round trip, a few
milliseconds), releases the workers at a shared start and asks them to stop. The
parts come back as the tasks' results and merge in ``LoadResult.from_parts`` exactly
as the parts of worker processes do. No Dask Queue, Variable or Event is involved, so
nothing of a test stays on the scheduler.

A worker lost mid-test (its process died and the scheduler dropped it, or it has not
answered for the plan's ``timeout``) does not stop the test: its part becomes
WORKER_LOST rows (:func:`~nbstream.loadtest.recorder.lost_part`) and the other
workers' rows are kept. A worker lost before the start fails the test at once.

Needs ``pip install 'nbstream[dask]'`` here and nbstream on every worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from nbstream.loadtest.plan import LoadPlan, PlanPart
from nbstream.loadtest.recorder import PartialResult, lost_part
from nbstream.loadtest.workers import Channel, OnTick, Report, run_part, run_parts

if TYPE_CHECKING:
    import distributed
    from distributed.deploy.cluster import Cluster

logger = logging.getLogger(__name__)

CALL_TIMEOUT = 2.0
"""Seconds one call to the workers may take before this tick goes without their reports
(they keep them for the next); only a worker dying during the call makes it that slow."""

ClusterTarget: TypeAlias = "distributed.Client | Cluster | str"
"""A ``distributed.Client``, a cluster object (``LocalCluster``...) or a scheduler
address (``"tcp://10.0.0.5:8786"``)."""


def _require_distributed() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ImportError("load_test(cluster=...) needs Dask's distributed scheduler: "
                          "pip install 'nbstream[dask]'") from exc


class ClusterRun:
    """The plan split over the workers of a Dask cluster, one part per worker.

    Args:
        plan: What to run; ``plan.processes`` is not used.
        cluster: A ``distributed.Client`` (used as it is and left open), a cluster
            object or a scheduler address (a client is opened on the run's event loop
            and closed at the end).
        workers: How many of the cluster's workers to use; None: every worker, at most
            one per connection.

    Raises:
        ImportError: when dask.distributed is not installed here.
        TypeError: when ``cluster`` is none of the above.
    """

    def __init__(self, plan: LoadPlan, cluster: ClusterTarget,
                 workers: int | None = None) -> None:
        _require_distributed()
        from distributed import Client

        if not isinstance(cluster, str | Client) and not hasattr(cluster, "scheduler_address"):
            raise TypeError("cluster must be a distributed.Client, a Dask cluster or a "
                            f"scheduler address, got {cluster!r}")
        self.plan = plan
        self.cluster = cluster
        self.workers = workers
        self._cancelled = False

    async def run(self, on_tick: OnTick) -> list[PartialResult]:
        from distributed import Client

        if isinstance(self.cluster, Client):
            return await self._run(self.cluster, on_tick)
        address = (self.cluster if isinstance(self.cluster, str)
                   else self.cluster.scheduler_address)
        client = await Client(address, asynchronous=True,  # type: ignore[no-untyped-call]
                              set_as_default=False)
        try:
            return await self._run(client, on_tick)
        finally:
            await client.close()

    async def _run(self, client: distributed.Client, on_tick: OnTick) -> list[PartialResult]:
        addresses = await self._choose(client)
        parts = self.plan.split(len(addresses))
        test = uuid.uuid4().hex
        tasks = [client.submit(load_test_part, part, test, pure=False, workers=[address],
                               allow_other_workers=False)
                 for part, address in zip(parts, addresses, strict=True)]
        loop = asyncio.get_running_loop()
        futures = [_bridge(task, loop) for task in tasks]
        hub = _ClusterHub(client, test, dict(zip(addresses, zip(parts, futures, strict=True),
                                                 strict=True)), self.plan.timeout)
        try:
            return await run_parts(futures, hub, on_tick, lambda: self._cancelled)
        finally:
            for future in futures:  # first, so that cancelled tasks settle nothing
                future.cancel()
            pending = [t for t in tasks if not t.done()]  # type: ignore[no-untyped-call]
            await _call(client, client.cancel, pending)
            await hub.forget()

    async def _choose(self, client: distributed.Client) -> list[str]:
        """The addresses of the workers to use, sorted."""
        addresses = sorted(await _call(client, client.nthreads))
        if not addresses:
            raise RuntimeError("the Dask cluster has no workers: start some, or wait for "
                               "them with client.wait_for_workers(n)")
        wanted = self.workers or min(len(addresses), self.plan.connections)
        if wanted > len(addresses):
            raise ValueError(f"processes={wanted} needs {wanted} Dask workers, the cluster "
                             f"has {len(addresses)}: ask for fewer or scale the cluster up")
        return addresses[:wanted]

    def cancel(self) -> None:
        self._cancelled = True


class WorkerLost(RuntimeError):
    """A Dask worker was lost before the load test started; run it again."""


class _ClusterHub:
    """The run's end of the workers' channels for test ``test``, through ``Client.run``.

    Watches its workers at every tick: one the scheduler no longer lists, or that has
    not answered for ``timeout`` seconds, is lost; its part's future then gets
    WORKER_LOST rows (or, before the start, :class:`WorkerLost`).
    """

    def __init__(self, client: distributed.Client, test: str,
                 workers: dict[str, tuple[PlanPart, asyncio.Future[PartialResult]]],
                 timeout: float) -> None:
        self.client = client
        self.test = test
        self.workers = workers
        self.timeout = timeout
        self.started_at: float | None = None
        self._heard = {address: time.monotonic() for address in workers}
        """When each live worker last answered (monotonic)."""
        self._lost: list[Report] = []

    @property
    def live(self) -> list[str]:
        return list(self._heard)

    async def _on_workers(self, function: Callable[..., Any], *args: Any) -> dict[str, Any]:
        """``function(test, *args)`` on every live worker: {address: result or error}."""
        if not self._heard:
            return {}
        try:
            replies: dict[str, Any] = await asyncio.wait_for(
                _call(self.client, self.client.run, function, self.test, *args,
                      workers=self.live, on_error="return"), CALL_TIMEOUT)
        except TimeoutError:
            return {}
        return replies

    async def reports(self) -> list[Report]:
        present = set(await _call(self.client, self.client.nthreads))
        for address in self.live:
            if address not in present:
                self._lose(address, "it left the cluster")
        reports, now = self._lost, time.monotonic()
        self._lost = []
        for address, reply in (await self._on_workers(_drain)).items():
            if address not in self._heard:
                continue
            if isinstance(reply, BaseException):
                if now - self._heard[address] > self.timeout:
                    self._lose(address, f"it did not answer for {self.timeout:g} s ({reply})")
            else:
                self._heard[address] = now
                reports += reply
        return reports

    def _lose(self, address: str, why: str) -> None:
        del self._heard[address]
        part, future = self.workers[address]
        reason = f"Dask worker {address} was lost: {why}"
        if future.done():  # its part came back before
            return
        if self.started_at is None:
            future.set_exception(WorkerLost(f"{reason}, before the load test started"))
            return
        logger.warning("%s, %.1f s into the load test; its part (%d connections) is kept as "
                       "WORKER_LOST rows", reason, time.time() - self.started_at,
                       len(part.connections))
        future.set_result(lost_part(part, self.started_at, reason))
        self._lost.append(("done", part.index, None))

    async def start(self, at: float) -> None:
        if self.started_at is None:
            self.started_at = at
        await self._on_workers(_release, at)

    async def stop(self) -> None:
        await self._on_workers(_halt)

    async def forget(self) -> None:
        """Drop the workers' channels of this test."""
        await self._on_workers(_forget)


async def _call(client: distributed.Client, method: Callable[..., Any], *args: Any,
                **kwargs: Any) -> Any:
    """Call a Client method without blocking this loop: awaited on an asynchronous client,
    in a thread on a blocking one."""
    if client.asynchronous:
        return await method(*args, **kwargs)
    return await asyncio.to_thread(method, *args, **kwargs)


def _bridge(task: distributed.Future[PartialResult], loop: asyncio.AbstractEventLoop,
            ) -> asyncio.Future[PartialResult]:
    """An asyncio future on ``loop`` that gets ``task``'s result or error."""
    future: asyncio.Future[PartialResult] = loop.create_future()

    def fetch(_: distributed.Future[PartialResult]) -> None:  # on Dask's callback thread
        if task.cancelled() or loop.is_closed():  # type: ignore[no-untyped-call]
            return
        try:
            outcome: PartialResult | BaseException = task.result()  # blocking is fine here
        except BaseException as exc:
            outcome = exc
        loop.call_soon_threadsafe(_settle, future, outcome)

    task.add_done_callback(fetch)  # type: ignore[no-untyped-call]
    return future


def _settle(future: asyncio.Future[PartialResult], outcome: PartialResult | BaseException,
            ) -> None:
    if future.done():  # cancelled by the run
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


# -- in the Dask worker processes ---------------------------------------------------------

_channels: dict[str, Channel] = {}
"""This worker's channels, by test; made by whichever comes first, the task or the run."""
_channels_lock = threading.Lock()


def _channel(test: str) -> Channel:
    with _channels_lock:
        channel = _channels.get(test)
        if channel is None:
            channel = _channels[test] = Channel.in_process()
        return channel


def load_test_part(part: PlanPart, test: str) -> PartialResult:
    """The task a Dask worker runs: ``part`` of load test ``test``, on this thread."""
    return run_part(part, _channel(test))


def _drain(test: str) -> list[Report]:
    return _channel(test).drain()


def _release(test: str, at: float) -> None:
    _channel(test).release(at)


def _halt(test: str) -> None:
    _channel(test).halt()


def _forget(test: str) -> None:
    with _channels_lock:
        _channels.pop(test, None)
