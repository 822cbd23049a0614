"""The picture of one or more load-test results: latency CDF, throughput, p99, errors.

:func:`plot_results` draws on a :class:`ResultFigure`, a matplotlib ``Figure`` that
shows itself in any notebook front end (JupyterLab, classic Notebook, VS Code,
nbclient runs) without ``%matplotlib inline``: it has a PNG rich representation. It
is built without pyplot, so nothing keeps it alive once the caller drops it: drawing
in a loop leaks no figures.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import matplotlib
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.rcsetup import cycler
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from nbstream.loadtest import faults
from nbstream.loadtest.stepplot import draw_steps


class Run(Protocol):
    """What a plot reads of a result (a :class:`~nbstream.loadtest.LoadResult`)."""

    messages: Any
    """One row per message (a DataFrame)."""
    parameters: dict[str, Any]

    @property
    def timeseries(self) -> Any:
        """One row per second (a DataFrame)."""

    @property
    def steps(self) -> Any:
        """A scenario's steps (a DataFrame; empty for the built-in flow)."""

    checks: Any
    """A scenario's checks (a DataFrame)."""

Theme = Literal["light", "dark"]
"""Colours for a light page (dark text) or a dark one (light text)."""

THEMES: dict[str, Any] = {
    "light": {"legend.facecolor": "white"},
    "dark": {
        "text.color": "#e6edf3", "axes.labelcolor": "#e6edf3", "axes.edgecolor": "#9da7b3",
        "xtick.color": "#c9d1d9", "ytick.color": "#c9d1d9", "grid.color": "#9da7b3",
        "axes.facecolor": "#111111", "figure.facecolor": "#111111",
        "legend.facecolor": "#1e1e1e", "legend.edgecolor": "#9da7b3",
        "axes.prop_cycle": cycler(color=["#58a6ff", "#f0883e", "#3fb950", "#d2a8ff",
                                         "#ff7b72", "#e3b341", "#39c5cf", "#ec8ee9"]),
    },
}
"""matplotlib settings per theme, applied while a figure is drawn."""

DPI = 100
"""Pixels per inch of the PNG a figure shows itself as."""


class ResultFigure(Figure):
    """A matplotlib Figure that displays itself as a PNG in a notebook.

    Use it as any Figure: ``fig.savefig("load.png")``, ``fig.axes``.
    """

    def _repr_png_(self) -> bytes:
        return png(self, dpi=DPI)


def png(figure: Figure, *, dpi: int = DPI, transparent: bool = False) -> bytes:
    """``figure`` as PNG bytes; ``transparent`` leaves out the background."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", transparent=transparent)
    return buffer.getvalue()


def plot_results(runs: Sequence[Run], labels: Sequence[str] | None = None,
                 theme: Theme = "light") -> ResultFigure:
    """Draw ``runs`` on the same four axes; see :meth:`LoadResult.plot`."""
    if theme not in THEMES:
        raise ValueError(f"theme must be one of {sorted(THEMES)}, not {theme!r}")
    names = list(labels) if labels is not None else (
        [""] if len(runs) == 1 else [f"run {i + 1}" for i in range(len(runs))])
    if len(names) != len(runs):
        raise ValueError(f"{len(runs)} runs but {len(names)} labels")
    scenario = any(len(run.steps) or len(run.checks) for run in runs)
    with matplotlib.rc_context(THEMES[theme]):
        figure = ResultFigure(figsize=(11, 10.5 if scenario else 7), layout="constrained")
        grid = figure.subplots(3 if scenario else 2, 2)
        (cdf, rate), (tail, errors) = grid[0], grid[1]
        latencies, most_errors = _draw(runs, names, cdf, rate, tail, errors)
        cdf.set(xscale="log", xlabel="latency (ms)", ylabel="fraction of messages",
                title="Latency CDF")
        _log_ticks(cdf, latencies)  # after the scale: setting it resets the ticks
        _error_axis(errors, most_errors)
        rate.set(xlabel="seconds", ylabel="messages/s", title="Throughput (completed)")
        tail.set(xlabel="seconds", ylabel="ms", title="p99 latency per second")
        errors.set(xlabel="seconds", ylabel="errors/s", title="Errors")
        if scenario:
            draw_steps(grid[2][0], grid[2][1], [(run.steps, run.checks) for run in runs],
                       names, matplotlib.rcParams["axes.prop_cycle"].by_key()["color"])
        for axes in figure.axes:
            axes.grid(alpha=0.3)
            if axes.get_legend_handles_labels()[0]:
                axes.legend(fontsize="small")
    return figure


def _draw(runs: Sequence[Run], names: list[str], cdf: Axes, rate: Axes, tail: Axes,
          errors: Axes) -> tuple[list[float], float]:
    """Plot every run; returns the extreme latencies drawn (ms) and the most errors/s."""
    width = 0.8 / len(runs)
    drawn: list[float] = []
    most_errors = 0.0
    # The theme's colours, resolved now: "C0" would be looked up when drawn, after the theme.
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (run, name) in enumerate(zip(runs, names, strict=True)):
        color = cycle[i % len(cycle)]
        prefix = f"{name} " if name else ""
        ok = run.messages[run.messages["error"].isna()]
        columns = ["latency"]
        if run.parameters.get("model") == "open":
            columns.append("latency_corrected")
        for column, style in zip(columns, ("-", "--"), strict=False):
            values = np.sort(ok[column].dropna().to_numpy()) * 1e3
            if len(values):
                drawn += [float(values[0]), float(values[-1])]
                cdf.plot(*cdf_points(values), style,
                         color=color, label=f"{prefix}{column.replace('_', ' ')}")
        ts = run.timeseries
        rate.plot(ts.index, ts["completed"], color=color, label=name or None)
        tail.plot(ts.index, ts["p99"] * 1e3, color=color, label=f"{prefix}p99")
        if "latency_corrected" in columns:
            tail.plot(ts.index, ts["p99_corrected"] * 1e3, "--", color=color,
                      label=f"{prefix}p99 corrected")
        errors.bar(ts.index + i * width, ts["errors"], width=width, align="edge",
                   color=color, label=name or None)
        most_errors = max(most_errors, float(ts["errors"].max()) if len(ts) else 0.0)
        faults.shade((rate, tail, errors), faults.windows_of(run.parameters))
    return drawn, most_errors


CDF_POINTS = 2000
"""Points of a drawn CDF spread evenly over the fraction of messages, plus the slowest
messages (the same number again) exactly: a million-message curve drawn point by point
looks the same and costs seconds to render."""


def cdf_points(values: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64],
                                                          npt.NDArray[np.float64]]:
    """The (latency, fraction of messages) points that draw the CDF of sorted ``values``."""
    count = len(values)
    kept = np.arange(count) if count <= 2 * CDF_POINTS else np.union1d(
        np.linspace(0, count - 1, CDF_POINTS).astype(np.int64),
        np.arange(count - CDF_POINTS, count))
    return values[kept], (kept + 1) / count


def _log_ticks(axes: Axes, latencies: list[float]) -> None:
    """Label 1-2-5 ticks over a few decades, only powers of ten over many; no minor labels.

    matplotlib's default labels minor ticks when the range is short, and they overlap.
    """
    positive = [v for v in latencies if v > 0]
    decades = math.log10(max(positive) / min(positive)) if positive else 0.0
    subs = (1.0, 2.0, 5.0) if decades <= 2.5 else (1.0,)
    axes.xaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())


def _error_axis(axes: Axes, top: float) -> None:
    """Whole errors per second from zero up; says so when there were none."""
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylim(0, max(1.0, top * 1.1))
    if top == 0:
        axes.text(0.5, 0.5, "no errors", transform=axes.transAxes, ha="center", va="center",
                  alpha=0.7)
