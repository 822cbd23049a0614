"""LoadResult: summary, timeseries, compare, plot, parquet round trip, display."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import nbstream
from nbstream.loadtest.recorder import ConnectionRow, MessageRow

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def server() -> Iterator[nbstream.Server]:
    server = nbstream.serve("echo")  # on nbstream's thread, shared by the module
    yield server
    server.stop(timeout=1.0)


@pytest.fixture(scope="module")
def closed(server: nbstream.Server) -> nbstream.LoadResult:
    return nbstream.load_test(server, connections=5, messages=20, progress=False)


@pytest.fixture(scope="module")
def opened(server: nbstream.Server) -> nbstream.LoadResult:
    return nbstream.load_test(server, connections=5, rate=200.0, duration=1.5, progress=False)


def test_columns_are_the_documented_rows(closed: nbstream.LoadResult) -> None:
    assert list(closed.messages.columns) == list(MessageRow.__annotations__)
    assert list(closed.connections.columns) == list(ConnectionRow.__annotations__)
    dtypes = closed.messages.dtypes.astype(str).to_dict()
    assert dtypes["connection"] == "Int64" and dtypes["error"] == "string"
    assert dtypes["sent_at"] == "float64" and dtypes["replies"] == "int64"
    assert closed.connections["close_code"].dtype == "Int64"


def test_summary_has_one_row_per_metric(closed: nbstream.LoadResult) -> None:
    summary = closed.summary()
    assert list(summary.columns) == ["value", "unit"] and summary.index.name == "metric"
    value = summary["value"]
    assert value["requests"] == value["completed"] == 100
    for name in ("latency", "latency_corrected", "ttft", "ttft_corrected"):
        tail = [value[f"{name}_p{p}"] for p in ("50", "90", "99", "99.9")]
        assert tail == sorted(tail) and tail[-1] <= value[f"{name}_max"]
    assert value["connect_p50"] > 0 and value["throughput"] > 0
    assert summary.loc["throughput", "unit"] == "msg/s"
    assert summary.attrs["parameters"]["connections"] == 5
    assert {"nbstream", "websockets", "python"} <= set(summary.attrs["versions"])


def test_percentiles_match_the_rows_to_three_digits(opened: nbstream.LoadResult) -> None:
    m = opened.messages
    value = opened.summary()["value"]
    for name in ("latency", "latency_corrected"):
        for p in (50, 99):  # nearest rank, as HdrHistogram counts
            exact = np.sort(m[name].to_numpy())[max(1, int(p / 100 * len(m) + 0.5)) - 1]
            assert value[f"{name}_p{p}"] == pytest.approx(exact, rel=1e-3, abs=2e-6)
    assert value["latency_corrected_p50"] >= value["latency_p50"]


def test_timeseries_buckets_add_up(opened: nbstream.LoadResult) -> None:
    ts = opened.timeseries
    assert ts.index.name == "second" and list(ts.index) == list(range(len(ts)))
    assert ts["sent"].sum() == ts["completed"].sum() == 300
    assert (ts["in_flight"] >= 0).all() and ts["in_flight"].iloc[-1] == 0
    assert ts["p99"].dropna().gt(0).all()
    assert list(ts.columns) == ["sent", "completed", "errors", "in_flight", "p50", "p99",
                                "p99_corrected"]


def test_parquet_round_trip_is_lossless(opened: nbstream.LoadResult, tmp_path: Path) -> None:
    path = tmp_path / "run.parquet"
    opened.to_parquet(path)
    back = nbstream.LoadResult.read_parquet(path)
    pd.testing.assert_frame_equal(back.messages, opened.messages)
    pd.testing.assert_frame_equal(back.connections, opened.connections)
    assert back.parameters == opened.parameters and back.versions == opened.versions
    assert back.started_at == opened.started_at
    for name, histogram in opened.histograms.items():
        assert back.histograms[name].equals(histogram)
    pd.testing.assert_frame_equal(back.summary(), opened.summary())
    assert len(pd.read_parquet(path)) == 300  # any parquet reader sees the message rows


def test_reading_a_foreign_parquet_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(path)
    with pytest.raises(ValueError, match="not a file written by LoadResult"):
        nbstream.LoadResult.read_parquet(path)


def test_compare_sets_two_runs_side_by_side(closed: nbstream.LoadResult,
                                            opened: nbstream.LoadResult) -> None:
    table = closed.compare(opened, labels=("closed", "open"))
    assert list(table.columns) == ["closed", "open", "unit", "change"]
    assert table.loc["requests", "change"] == pytest.approx(2.0)
    figure = closed.plot(opened, labels=["closed", "open"])
    assert isinstance(figure, Figure) and len(figure.axes) == 4


def test_plot_draws_cdf_throughput_p99_and_errors(opened: nbstream.LoadResult) -> None:
    figure = opened.plot()
    cdf, rate, tail, errors = figure.axes
    assert cdf.get_xscale() == "log" and len(cdf.lines) == 2  # raw and corrected
    assert len(rate.lines) == 1 and len(tail.lines) == 2 and errors.patches


def test_display(closed: nbstream.LoadResult) -> None:
    html = closed._repr_html_()
    assert "<table" in html and "closed model, 5 connections x 20 messages" in html
    text = str(closed)
    assert "throughput" in text and "latency_p99" in text
    assert repr(closed).startswith("<LoadResult closed: 100 messages, 0 errors")
