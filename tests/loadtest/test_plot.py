"""LoadResult.plot(): shows itself in any front end, leaks nothing, reads well in both themes."""

from __future__ import annotations

import gc
import itertools
import weakref
from collections.abc import Iterator

import matplotlib
import numpy as np
import pytest
from IPython.core.formatters import DisplayFormatter
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import nbstream
from nbstream.loadtest.plot import CDF_POINTS, ResultFigure, cdf_points

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def result() -> Iterator[nbstream.LoadResult]:
    server = nbstream.serve("echo")  # on nbstream's thread, shared by the module
    yield nbstream.load_test(server, connections=4, messages=25, progress=False)
    server.stop(timeout=1.0)


def with_latencies(result: nbstream.LoadResult, low: float, high: float) -> nbstream.LoadResult:
    """The same run with its latencies spread evenly from ``low`` to ``high`` seconds."""
    spread = np.geomspace(low, high, len(result.messages))
    return nbstream.LoadResult(result.messages.assign(latency=spread), result.connections,
                               result.histograms, result.parameters, result.started_at,
                               result.versions)


def test_a_figure_displays_as_a_png_without_pyplot(result: nbstream.LoadResult) -> None:
    import sys

    figure = result.plot()
    assert isinstance(figure, Figure) and isinstance(figure, ResultFigure)
    # what IPython sends to any front end
    data, _ = DisplayFormatter().format(figure)  # type: ignore[no-untyped-call]
    assert data["image/png"][:4] == b"\x89PNG"
    assert "matplotlib.pyplot" not in sys.modules  # nothing relied on pyplot's manager


def test_plotting_in_a_loop_keeps_no_figure_alive(result: nbstream.LoadResult) -> None:
    refs = []
    for _ in range(5):
        figure = result.plot()
        figure._repr_png_()
        refs.append(weakref.ref(figure))
    del figure
    gc.collect()
    assert [ref() for ref in refs] == [None] * 5


def labels_overlap(figure: Figure) -> bool:
    canvas: FigureCanvasBase = FigureCanvasAgg(figure)  # draw() is typed on the base
    canvas.draw()
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    axis = figure.axes[0].xaxis
    low, high = axis.get_view_interval()
    boxes = [tick.label1.get_window_extent(renderer)
             for tick in (*axis.get_major_ticks(), *axis.get_minor_ticks())
             if low <= tick.get_loc() <= high and tick.label1.get_visible()
             and tick.label1.get_text()]
    assert len(boxes) >= 2, "the latency axis must keep at least two labels"
    return any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))


@pytest.mark.parametrize(("low", "high"), [(0.0011, 0.0019), (0.0005, 0.004),
                                           (0.00002, 9.0)])
def test_latency_tick_labels_never_overlap(result: nbstream.LoadResult, low: float,
                                           high: float) -> None:
    assert not labels_overlap(with_latencies(result, low, high).plot())


def test_the_errors_panel_starts_at_zero_and_says_there_were_none(
        result: nbstream.LoadResult) -> None:
    errors = result.plot().axes[3]
    bottom, top = errors.get_ylim()
    assert bottom == 0 and top >= 1
    assert [t.get_text() for t in errors.texts] == ["no errors"]


def test_the_dark_theme_draws_light_text(result: nbstream.LoadResult) -> None:
    light, dark = result.plot(), result.plot(theme="dark")
    assert matplotlib.colors.to_rgb(light.axes[0].title.get_color()) == (0, 0, 0)
    assert min(matplotlib.colors.to_rgb(dark.axes[0].title.get_color())) > 0.8
    light_line, dark_line = light.axes[1].lines[0], dark.axes[1].lines[0]
    assert light_line.get_color() != dark_line.get_color()  # brighter lines on dark
    with pytest.raises(ValueError, match="theme must be one of"):
        result.plot(theme="blue")  # type: ignore[arg-type]


def test_a_long_cdf_is_drawn_from_fewer_points_that_keep_its_shape() -> None:
    rng = np.random.default_rng(7)
    values = np.sort(rng.lognormal(0.0, 1.5, 1_000_000))
    fractions = np.arange(1, len(values) + 1) / len(values)
    x, y = cdf_points(values)
    assert len(x) <= 2 * CDF_POINTS
    assert (x[0], x[-1], y[-1]) == (values[0], values[-1], 1.0)  # fastest and slowest
    assert np.array_equal(x[-CDF_POINTS:], values[-CDF_POINTS:])  # the tail, exactly
    assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) > 0)
    # Between two drawn points the true CDF never strays more than one step of the grid.
    drawn = np.interp(values, x, y)
    assert np.max(np.abs(drawn - fractions)) <= 1 / CDF_POINTS


def test_a_short_cdf_is_drawn_point_by_point() -> None:
    values = np.arange(1.0, 11.0)
    x, y = cdf_points(values)
    assert np.array_equal(x, values)
    assert np.allclose(y, np.arange(1, 11) / 10)
