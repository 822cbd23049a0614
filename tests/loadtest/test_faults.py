"""load_test(..., faults=[...]): the load goes through a fault proxy on a schedule, and the
result shows the windows in its timeseries, plot and summary."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

import nbstream
from nbstream.loadtest.faults import check_schedule, inside_outside, per_second
from tests.conftest import ServerFactory

matplotlib.use("Agg")


@pytest.mark.parametrize(("faults", "expected"), [
    ([(1, 2)], r"faults\[0\] must be \(start_s, duration_s, fault\)"),
    ([(-1, 2, "latency", {"ms": 5})], r"faults\[0\]: start_s must be seconds \(>= 0\)"),
    ([(0, 0, "latency", {"ms": 5})], r"faults\[0\]: duration_s must be more than 0"),
    ([(0, 1, "drop"), (0, 1, "latency")], r"faults\[1\]: latency needs ms=\.\.\."),
    ([(0, 1, "drop", {"direction": "left"})], r"faults\[0\]: direction must be"),
    ([(0, 1, "gremlins")], r"faults\[0\]: no fault named 'gremlins'"),
])
def test_a_wrong_schedule_is_refused_before_anything_starts(
        faults: list[tuple[object, ...]], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        nbstream.start_load_test("ws://127.0.0.1:9/ws", faults=faults)  # type: ignore[arg-type]


def test_faults_and_a_cluster_do_not_mix() -> None:
    with pytest.raises(ValueError, match="drop cluster= or faults="):
        nbstream.start_load_test("ws://127.0.0.1:9/ws", cluster="tcp://10.0.0.5:8786",
                                 faults=[(0, 1, "latency", {"ms": 5})])


def test_schedule_entries_keep_direction_and_probability() -> None:
    [entry] = check_schedule([(0.5, 1, "drop", {"match": "end", "probability": 0.5,
                                                "direction": "both"})])
    assert (entry.start, entry.duration, entry.fault) == (0.5, 1.0, "drop")
    assert entry.params == {"match": "end", "probability": 0.5, "direction": "both"}


async def test_a_latency_window_shows_inside_the_result(start_server: ServerFactory,
                                                        tmp_path: Path) -> None:
    server = await start_server("echo")
    result = await nbstream.aload_test(
        server, connections=4, duration=3.0, progress=False,
        faults=[(1.1, 0.7, "latency", {"ms": 50, "direction": "both"})])
    [window] = result.parameters["faults"]
    assert window["fault"] == "latency" and window["params"]["ms"] == 50
    assert 1.0 <= window["start"] <= 1.3 and 0.6 <= window["end"] - window["start"] <= 0.85
    assert result.parameters["target"] == server.url
    assert result.parameters["proxy"] != server.url
    ts = result.timeseries
    assert list(ts["fault"]) == ["", "latency"] + [""] * (len(ts) - 2)
    value = result.summary()["value"]
    assert value["fault_windows"] == 1
    assert value["inside_faults.latency_p50"] >= 0.09  # 50 ms each way
    assert value["outside_faults.latency_p50"] < 0.05
    assert value["inside_faults.requests"] > 0 and value["outside_faults.requests"] > 0
    figure = result.plot()
    labels = [t.get_text() for ax in figure.axes if (legend := ax.get_legend())
              for t in legend.get_texts()]
    assert "fault: latency" in labels
    path = tmp_path / "faults.parquet"
    result.to_parquet(path)
    again = nbstream.LoadResult.read_parquet(path)
    assert again.parameters["faults"] == result.parameters["faults"]
    assert list(again.timeseries["fault"]) == list(ts["fault"])


def test_per_second_names_every_fault_touching_the_second() -> None:
    windows = [{"start": 0.5, "end": 1.2, "fault": "latency"},
               {"start": 1.5, "end": 1.6, "fault": "drop"}]
    assert per_second(windows, 3) == ["latency", "latency+drop", ""]


def test_inside_and_outside_split_by_when_a_message_was_sent() -> None:
    messages = pd.DataFrame({
        "sent_at": [0.1, 0.2, 1.1, 1.2, 2.5],
        "done_at": [0.15, 0.25, 1.5, np.nan, 2.55],
        "latency": [0.05, 0.05, 0.4, np.nan, 0.05],
        "error": pd.array([None, None, None, "TIMEOUT", None], dtype="string"),
    })
    rows = dict((name, value) for name, value, _ in
                inside_outside(messages, [{"start": 1.0, "end": 2.0, "fault": "x"}]))
    assert rows["inside_faults.requests"] == 2 and rows["inside_faults.errors"] == 1
    assert rows["outside_faults.requests"] == 3 and rows["outside_faults.errors"] == 0
    assert rows["inside_faults.latency_p50"] == 0.4
    assert rows["fault_seconds"] == 1.0
