"""A Dask worker lost mid-test: the others' rows are kept, the lost part is error rows."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import numpy as np
import pytest
from distributed import Client, LocalCluster

import nbstream
from tests.conftest import TIMEOUT, ServerFactory
from tests.conftest import eventually as until


@pytest.fixture
def doomed_client() -> Iterator[Client]:
    """A cluster of two single-thread worker processes, of its own: one will be killed."""
    with LocalCluster(n_workers=2, threads_per_worker=1,  # type: ignore[no-untyped-call]
                      processes=True, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:  # type: ignore[no-untyped-call]
        yield client


@pytest.mark.timeout(120)
async def test_a_killed_worker_leaves_its_part_as_error_rows_and_the_test_goes_on(
        start_server: ServerFactory, doomed_client: Client) -> None:
    server = await start_server("echo", max_connections_per_user=None)
    timeout, duration = 3.0, 6.0
    test = nbstream.start_load_test(server, connections=4, rate=100.0, duration=duration,
                                    timeout=timeout, progress=False, cluster=doomed_client)
    await until(lambda: test.progress().completed >= 100, timeout=3 * TIMEOUT,
                what="both workers running")
    pids: dict[str, int] = await asyncio.to_thread(doomed_client.run, os.getpid)
    victim = sorted(pids)[1]  # part 1: connections 1 and 3
    os.kill(pids[victim], signal.SIGKILL)
    killed_at = time.monotonic()
    result = await asyncio.wait_for(test.aresult(), duration + timeout + TIMEOUT)
    assert time.monotonic() - killed_at < duration + timeout  # not three 30 s timeouts

    messages, connections = result.messages, result.connections
    assert list(messages["seq"]) == list(range(600))  # every planned message has a row
    lost = messages["error"].fillna("") == "WORKER_LOST"
    assert lost.sum() == 300 and messages.loc[lost, "connection"].isna().all()
    kept = messages[~lost]
    assert kept["error"].isna().all() and set(kept["connection"] % 2) == {0}
    assert np.isfinite(kept["latency"]).all()  # what the surviving worker measured
    assert list(connections["connection"]) == [0, 1, 2, 3]
    assert list(connections["error"].fillna("")) == ["", "WORKER_LOST", "", "WORKER_LOST"]
    reason = connections.loc[1, "close_reason"]
    assert isinstance(reason, str) and victim in reason
    assert result.summary().loc["errors.WORKER_LOST", "value"] == 300
