"""LoadTestView: throughput, in-flight, p50/p99 and errors while a load test runs.

``nbstream.LoadTestView(nbstream.start_load_test(...))`` updates live from the load
test's progress callback (about ten times a second), with sparklines of throughput
and p99 latency, and ends with the final summary table and plot.
"""

from __future__ import annotations

import asyncio
from collections import deque
from html import escape
from typing import TYPE_CHECKING

import ipywidgets as w

from nbstream import runtime
from nbstream.views import html
from nbstream.views.throttle import DEFAULT_INTERVAL, Throttle
from nbstream.views.viewbox import ViewBox

if TYPE_CHECKING:
    from nbstream.loadtest import LoadProgress, LoadTest
    from nbstream.loadtest.plot import Theme

THEMED_PLOTS = (
    "<style>.nbs-plot-dark{display:none}"
    "body[data-jp-theme-light='false'] .nbs-plot-light,body.vscode-dark .nbs-plot-light"
    "{display:none}"
    "body[data-jp-theme-light='false'] .nbs-plot-dark,body.vscode-dark .nbs-plot-dark"
    "{display:block}</style>"
)
"""Show the plot drawn for the page's theme: JupyterLab's dark themes, VS Code's dark."""

HISTORY = 600
"""Progress samples kept for the sparklines (a minute at ten a second)."""


def _nothing() -> None:
    """What unsubscribing does once it has been done."""


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.1f}"


def progress_html(progress: LoadProgress, series: list[tuple[float, float]]) -> str:
    """The live panel: figures, a progress bar when the plan is known, two sparklines.

    ``series`` holds ``(throughput, p99)`` samples, oldest first.
    """
    state = "done" if progress.done else "running"
    bar = ""
    if progress.planned:
        bar = (f'<progress value="{progress.completed}" max="{progress.planned}" '
               f'style="width:320px"></progress> {progress.completed:,} / {progress.planned:,}')
    css = "nbs-bad" if progress.errors else "nbs-ok"
    errors = f'<span class="{css}">{progress.errors:,}</span>'
    figures = html.figures([
        ("messages/s", f"{progress.throughput:,.0f}"),
        ("in flight", f"{progress.in_flight:,}"),
        ("p50 ms", _ms(progress.p50)),
        ("p99 ms", _ms(progress.p99)),
        ("connections", f"{progress.connections_open:,}"),
        ("sent", f"{progress.sent:,}"),
        ("seconds", f"{progress.elapsed:.1f}"),
    ])
    lines = (html.sparkline([s[0] for s in series], label="messages/s")
             + html.sparkline([(s[1] or 0.0) * 1000 for s in series], colour="#bc4c00",
                              label="p99 ms"))
    return (f"<div><b>load test</b> — {state}, errors {errors}</div>{figures}{bar}"
            f'<div style="display:flex;gap:24px">{lines}</div>')


class LoadTestView(ViewBox):
    """Live panel of a running load test, ending with its summary table and plot.

    Create it right after ``nbstream.start_load_test(...)`` and display it; it
    follows the test by itself. Call :meth:`close` when done.
    """

    def __init__(self, load_test: LoadTest, *, interval: float = DEFAULT_INTERVAL,
                 history: int = HISTORY) -> None:
        self.load_test = load_test
        self._loop = runtime.home_loop()
        self._throttle = Throttle(self._loop, self._flush, interval)
        self._latest: LoadProgress | None = None
        self._series: deque[tuple[float, float]] = deque(maxlen=history)
        self._finishing: asyncio.Future[None] | None = None
        self.live = w.HTML()
        self.summary = w.HTML()
        """The final summary table, once the test is done."""
        self.plot = _hidden_image("nbs-plot-light")
        """The final plot as PNG, once the test is done (for light themes)."""
        self.plot_dark = _hidden_image("nbs-plot-dark")
        """The same plot drawn for dark themes; the page shows the one that fits."""
        self._owned = [w.HTML(html.STYLE + THEMED_PLOTS), self.live, self.summary, self.plot,
                       self.plot_dark]
        super().__init__(self._owned)
        self._unsubscribe = load_test.subscribe(self._on_progress)
        self._on_progress(load_test.progress())

    @property
    def pushes(self) -> int:
        """How many times the live panel refreshed."""
        return self._throttle.flushes

    def _on_progress(self, progress: LoadProgress) -> None:
        self._latest = progress
        self._series.append((progress.throughput, progress.p99 or 0.0))
        self._throttle.poke()

    def _flush(self) -> None:
        progress = self._latest
        if progress is None:
            return
        self.live.value = progress_html(progress, list(self._series))
        if progress.done and self._finishing is None:
            self._finishing = asyncio.ensure_future(self._finish())

    def _stop_listening(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, _nothing
        unsubscribe()

    async def _finish(self) -> None:
        from nbstream.loadtest.plot import png  # matplotlib: only once there is a plot

        self._stop_listening()
        try:
            result = await self.load_test.aresult()
            self.summary.value = html.STYLE + result.summary().to_html(
                classes="nbs-table", float_format=lambda v: f"{v:,.4g}", border=0)
            themed: list[tuple[w.Image, Theme]] = [(self.plot, "light"),
                                                   (self.plot_dark, "dark")]
            for image, theme in themed:
                await asyncio.sleep(0)  # one blocking render per loop turn: servers run between
                image.value = png(result.plot(theme=theme), dpi=80, transparent=True)
                image.layout.display = None  # shown now; the page's theme picks one
        except Exception as exc:  # show it where the user is looking
            self.summary.value = f"<pre>{escape(repr(exc))}</pre>"


    def __repr__(self) -> str:
        return f"<nbstream.LoadTestView of {self.load_test!r}>"


def _hidden_image(css_class: str) -> w.Image:
    """An image that takes no room (and shows no broken-image icon) until it has a value."""
    image = w.Image(format="png", layout=w.Layout(display="none"))
    image.add_class(css_class)
    return image
