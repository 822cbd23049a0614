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

Needs ``pip install 'nbstream[dask]'`` here and nbstream on every worker.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from nbstream.loadtest.plan import LoadPlan, PlanPart
from nbstream.loadtest.recorder import PartialResult
from nbstream.loadtest.workers import Channel, OnTick, Report, run_part, run_parts

if TYPE_CHECKING:
    import distributed
    from distributed.deploy.cluster import Cluster

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
        hub = _ClusterHub(client, uuid.uuid4().hex, addresses)
        tasks = [client.submit(load_test_part, part, hub.test, pure=False, workers=[address],
                               allow_other_workers=False)
                 for part, address in zip(self.plan.split(len(addresses)), addresses,
                                          strict=True)]
        loop = asyncio.get_running_loop()
        futures = [_bridge(task, loop) for task in tasks]
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


class _ClusterHub:
    """The run's end of the workers' channels for test ``test``, through ``Client.run``."""

    def __init__(self, client: distributed.Client, test: str, addresses: list[str]) -> None:
        self.client = client
        self.test = test
        self.addresses = addresses

    async def _on_workers(self, function: Callable[..., Any], *args: Any) -> dict[str, Any]:
        replies: dict[str, Any] = await _call(self.client, self.client.run, function,
                                              self.test, *args, workers=self.addresses)
        return replies

    async def reports(self) -> list[Report]:
        replies = await self._on_workers(_drain)
        return [report for reports in replies.values() for report in reports]

    async def start(self, at: float) -> None:
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
