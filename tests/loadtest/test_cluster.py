"""cluster=: the parts of a plan run on the workers of a Dask cluster and merge exactly."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator

import pytest
from distributed import Client, LocalCluster, get_task_stream

import nbstream
from nbstream.cli import main
from nbstream.loadtest.cluster import ClusterRun
from nbstream.loadtest.plan import LoadPlan
from nbstream.loadtest.recorder import HISTOGRAMS, decode_histogram, histogram_of, new_histogram
from nbstream.loadtest.result import PERCENTILES, LoadResult
from tests.conftest import ServerFactory


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Two worker processes of one thread each (takes a second or two to start)."""
    with LocalCluster(n_workers=2, threads_per_worker=1,  # type: ignore[no-untyped-call]
                      processes=True, dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster, set_as_default=False) as client:  # type: ignore[no-untyped-call]
        yield client


async def echo(start_server: ServerFactory) -> nbstream.Server:
    return await start_server("echo", max_connections_per_user=None)


async def test_two_dask_workers_count_what_one_process_counts(
        start_server: ServerFactory, client: Client) -> None:
    server = await echo(start_server)
    one = await nbstream.aload_test(server, connections=8, messages=25, progress=False)
    with get_task_stream(client) as stream:
        two = await nbstream.aload_test(server, connections=8, messages=25, progress=False,
                                        cluster=client)
    assert two.parameters["processes"] == 2
    assert len({task["worker"] for task in stream.data}) == 2  # one part per worker
    for result in (one, two):
        m = result.messages
        assert len(m) == 200 and m["error"].isna().all()
        assert list(zip(m["connection"], m["seq"], strict=True)) == [
            (c, i) for c in range(8) for i in range(25)]
        for name in ("latency", "latency_corrected", "ttft"):
            assert result.histograms[name].equals(histogram_of(m[name].to_numpy()))
    counts = ["requests", "sent", "completed", "errors", "connections", "connections_failed"]
    assert (one.summary().loc[counts, "value"] == two.summary().loc[counts, "value"]).all()
    assert 0 <= two.messages["sent_at"].min() < 1.0  # one time axis from the shared start


async def test_merged_percentiles_are_those_of_the_parts_histograms_added(
        start_server: ServerFactory, client: Client) -> None:
    server = await echo(start_server)
    plan = LoadPlan.create(server.url, connections=6, messages=30)
    parts = await ClusterRun(plan, client).run(lambda ticks: None)
    assert [p.index for p in parts] == [0, 1]
    assert [set(p.connections["connection"]) for p in parts] == [{0, 2, 4}, {1, 3, 5}]
    result = LoadResult.from_parts(parts, plan.parameters())
    for name in HISTOGRAMS:
        added = new_histogram()
        for part in parts:
            added.add(decode_histogram(part.histograms[name]))
        merged = result.histograms[name]
        assert [merged.get_value_at_percentile(p) for p in PERCENTILES] == [
            added.get_value_at_percentile(p) for p in PERCENTILES]
    assert result.histograms["latency"].get_total_count() == len(result.messages) == 180


async def test_progress_arrives_while_the_workers_run(
        start_server: ServerFactory, client: Client) -> None:
    server = await echo(start_server)
    test = nbstream.start_load_test(server, connections=4, rate=200.0, duration=1.0,
                                    progress=False, cluster=client)
    seen: list[nbstream.LoadProgress] = []
    test.subscribe(seen.append)
    result = await test.aresult()
    assert list(result.messages["seq"]) == list(range(200))
    assert result.messages["error"].isna().all()
    assert set(result.messages["connection"] % 2) == {0, 1}
    running = [p.completed for p in seen if not p.done]
    assert len(running) >= 5 and any(0 < completed < 200 for completed in running)
    assert seen[-1].done and seen[-1].completed == 200


async def test_a_scheduler_address_and_a_cluster_object_work(
        start_server: ServerFactory, cluster: LocalCluster) -> None:
    server = await echo(start_server)
    by_address = await nbstream.aload_test(server, connections=4, messages=5, progress=False,
                                           cluster=cluster.scheduler_address, processes=1)
    by_object = await nbstream.aload_test(server, connections=4, messages=5, progress=False,
                                          cluster=cluster)
    assert by_address.parameters["processes"] == 1 and by_object.parameters["processes"] == 2
    for result in (by_address, by_object):
        assert len(result.messages) == 20 and result.messages["error"].isna().all()


async def test_a_dead_target_gives_error_rows(
        closed_port_url: str, client: Client) -> None:
    result = await nbstream.aload_test(closed_port_url, connections=4, messages=2,
                                       timeout=5.0, progress=False, cluster=client)
    assert set(result.connections["error"]) == {"CONNECTION_REFUSED"}
    assert len(result.messages) == 8 and set(result.messages["error"]) == {"NOT_SENT"}


async def test_cancel_stops_the_workers_and_keeps_their_rows(
        start_server: ServerFactory, client: Client) -> None:
    server = await echo(start_server)
    test = nbstream.start_load_test(server, connections=4, rate=100.0, duration=30.0,
                                    progress=False, cluster=client)
    while test.progress().completed < 20:
        assert not test.done
        await asyncio.sleep(0.05)
    cancelled_at = time.monotonic()
    test.cancel()
    result = await test.aresult()
    assert time.monotonic() - cancelled_at < 5.0
    sent = result.messages["sent_at"].notna()
    assert 20 <= sent.sum() < 3000 and set(result.messages["connection"].dropna() % 2) == {0, 1}


def test_the_command_line_takes_a_scheduler_address(
        cluster: LocalCluster, capsys: pytest.CaptureFixture[str]) -> None:
    server = nbstream.serve("echo", thread=True, max_connections_per_user=None)
    try:
        code = main(["load", server.url, "--connections", "4", "--messages", "3",
                     "--no-progress", "--cluster", cluster.scheduler_address])
    finally:
        server.stop(timeout=1.0)
    assert code == 0
    assert "closed model, 4 connections x 3 messages, 2 processes" in capsys.readouterr().out


async def test_more_workers_than_the_cluster_has_is_an_error(
        start_server: ServerFactory, client: Client) -> None:
    server = await echo(start_server)
    with pytest.raises(ValueError, match="processes=3 needs 3 Dask workers, the cluster has 2"):
        await nbstream.aload_test(server, connections=4, messages=1, processes=3,
                                  progress=False, cluster=client)


def test_without_distributed_the_error_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'nbstream\[dask\]'"):
        nbstream.start_load_test("ws://127.0.0.1:9/ws", cluster="tcp://127.0.0.1:8786")


def test_a_cluster_of_the_wrong_kind_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"cluster must be a distributed\.Client"):
        nbstream.start_load_test("ws://127.0.0.1:9/ws", cluster=42)  # type: ignore[arg-type]


async def test_a_scenario_from_a_cell_runs_on_dask_workers(
        start_server: ServerFactory, client: Client) -> None:
    server = await echo(start_server)
    greeting = "from a cell"  # captured by the flow: travels with it, by value

    async def cell_flow(user: nbstream.loadtest.User) -> None:
        async with user.step("chat"):
            replies = await user.client.achat(f"{greeting} {user.iteration}")
        user.check("echoed", greeting in "".join(r.text or "" for r in replies))

    result = await nbstream.aload_test(server, scenario=cell_flow, connections=4,
                                       iterations=3, cluster=client, progress=False)
    assert result.parameters["processes"] == 2
    assert result.messages["error"].isna().all() and list(result.steps.index) == ["chat"]
    assert result.steps.loc["chat", "count"] == 12 and result.checks.loc["echoed", "passes"] == 12
