"""processes=N: worker processes run disjoint parts; their results merge exactly."""

from __future__ import annotations

import nbstream
from nbstream.loadtest.recorder import histogram_of
from tests.conftest import ServerFactory


async def test_two_processes_merge_to_the_same_totals_as_one(
        start_server: ServerFactory) -> None:
    server = await start_server("echo")
    plan = {"connections": 8, "messages": 25, "progress": False}
    one = await nbstream.aload_test(server, processes=1, **plan)  # type: ignore[arg-type]
    two = await nbstream.aload_test(server, processes=2, **plan)  # type: ignore[arg-type]
    for result in (one, two):
        m = result.messages
        assert len(m) == 200 and m["error"].isna().all()
        assert list(zip(m["connection"], m["seq"], strict=True)) == [
            (c, i) for c in range(8) for i in range(25)]
        assert list(result.connections["connection"]) == list(range(8))
        # the merged histograms are exactly the histograms of the merged rows
        for name in ("latency", "latency_corrected", "ttft"):
            assert result.histograms[name].equals(histogram_of(m[name].to_numpy()))
        ttft_corrected = (m["first_reply_at"] - m["intended_at"]).to_numpy()
        assert result.histograms["ttft_corrected"].equals(histogram_of(ttft_corrected))
        assert result.histograms["connect"].equals(
            histogram_of(result.connections["connect_latency"].to_numpy()))
    counts = ["requests", "sent", "completed", "errors", "connections", "connections_failed"]
    assert (one.summary().loc[counts, "value"] == two.summary().loc[counts, "value"]).all()
    assert two.parameters["processes"] == 2
    # both workers' rows share one time axis starting at the shared start
    assert 0 <= two.messages["sent_at"].min() < 1.0


async def test_open_model_over_two_processes_keeps_the_timetable(
        start_server: ServerFactory) -> None:
    server = await start_server("echo")
    result = await nbstream.aload_test(server, connections=4, rate=100.0, duration=1.0,
                                       processes=2, progress=False)
    m = result.messages
    assert list(m["seq"]) == list(range(100)) and m["error"].isna().all()
    assert set(m["connection"] % 2) == {0, 1}
    spacing = m["intended_at"].diff().dropna()
    assert spacing.between(0.0, 0.02).all()  # one timetable, interleaved from two workers
