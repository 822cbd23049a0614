"""LoadTestView follows a load test's progress and ends with its summary and plot."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

import nbstream
from nbstream.loadtest import LoadProgress, LoadTest
from nbstream.views import FlowView, LoadTestView
from nbstream.views.commlog import CommLog
from nbstream.views.loadtest import progress_html
from tests.conftest import ServerFactory
from tests.views.conftest import eventually

matplotlib.use("Agg")


def snapshot(elapsed: float = 0.0, sent: int = 0, completed: int = 0, errors: int = 0,
             in_flight: int = 0, connections_open: int = 0, throughput: float = 0.0,
             p50: float | None = None, p99: float | None = None, done: bool = False,
             planned: int | None = 1_000) -> LoadProgress:
    """A progress snapshot with the given figures, the others nil (a plan of 1,000)."""
    return LoadProgress(elapsed=elapsed, sent=sent, completed=completed, errors=errors,
                        in_flight=in_flight, connections_open=connections_open,
                        throughput=throughput, p50=p50, p99=p99, done=done, planned=planned)


class Result:
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame({"messages": [1_000], "p99_ms": [4.2]})

    def plot(self, theme: str = "light") -> Figure:
        figure = Figure()
        figure.subplots().plot([1, 2, 3], color="white" if theme == "dark" else "black")
        return figure


class FakeLoadTest:
    """Stands in for nbstream.start_load_test(...): progress, subscribe, aresult."""

    def __init__(self) -> None:
        self.latest = snapshot()
        self.subscribers: list[Callable[[Any], None]] = []

    def progress(self) -> LoadProgress:
        return self.latest

    def subscribe(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        self.subscribers.append(callback)
        return lambda: self.subscribers.remove(callback)

    def report(self, progress: LoadProgress) -> None:
        self.latest = progress
        for callback in list(self.subscribers):
            callback(progress)

    async def aresult(self) -> Result:
        return Result()


async def test_follows_progress_then_shows_summary_and_plot(comms: CommLog) -> None:
    test = FakeLoadTest()
    view = LoadTestView(cast(LoadTest, test))  # the view only uses what the fake has
    assert view.plot.layout.display == view.plot_dark.layout.display == "none"  # no empty img
    for step in range(1, 30):
        test.report(snapshot(elapsed=step / 10, sent=step * 30, completed=step * 30,
                             in_flight=5, connections_open=10, throughput=300.0,
                             p50=0.002, p99=0.009))
        await asyncio.sleep(0.01)
    await eventually(lambda: "300" in view.live.value and "9.0" in view.live.value)
    assert comms.updates(view.live) <= 5
    test.report(snapshot(elapsed=3.0, sent=1_000, completed=1_000, done=True))
    await eventually(lambda: bool(view.plot.value))
    assert "done" in view.live.value
    assert "p99_ms" in view.summary.value
    assert bytes(view.plot.value).startswith(b"\x89PNG")
    assert bytes(view.plot_dark.value).startswith(b"\x89PNG")
    assert view.plot.value != view.plot_dark.value  # one drawn for each theme
    assert view.plot.layout.display is None and view.plot_dark.layout.display is None
    assert "nbs-plot-dark" in view.plot_dark._dom_classes
    assert test.subscribers == []  # it stopped listening by itself
    view.close()
    view.close()


async def test_the_loop_runs_between_the_two_final_plots() -> None:
    """Each themed plot blocks the loop while it renders: other work gets a turn between."""
    test = FakeLoadTest()
    view = LoadTestView(cast(LoadTest, test))
    order: list[str] = []
    view.plot.observe(lambda _: order.append("light"), "value")
    view.plot_dark.observe(lambda _: order.append("dark"), "value")

    async def tick() -> None:
        while True:
            order.append("tick")
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    try:
        test.report(snapshot(elapsed=1.0, sent=10, completed=10, done=True))
        await eventually(lambda: "dark" in order)
    finally:
        ticker.cancel()
    assert "tick" in order[order.index("light") + 1:order.index("dark")]
    view.close()


def test_progress_html_shows_the_plan_and_the_errors() -> None:
    text = progress_html(snapshot(completed=250, errors=3, p50=None), [(10.0, 0.001)] * 3)
    assert 'value="250" max="1000"' in text
    assert '<span class="nbs-bad">3</span>' in text
    assert "—" in text  # no latency yet
    assert "<svg" in text


async def test_follows_a_real_load_test_and_a_flowview_shows_its_messages(
        start_server: ServerFactory, comms: CommLog) -> None:
    server = await start_server("echo")
    test = nbstream.start_load_test(server, connections=5, messages=20, progress=False)
    view = LoadTestView(test)
    flow = FlowView(test)
    await test.aresult()
    await eventually(lambda: bool(view.plot.value))
    assert "1" in view.live.value and "done" in view.live.value
    assert "latency_p99" in view.summary.value
    await eventually(lambda: flow.counts == {"chat": 100, "content": 100, "end": 100})
    assert {row[3] for row in flow.rows} == {"0", "1", "2", "3", "4"}  # connection indices
    view.close()
    flow.close()
