"""LoadResult: a finished load test as DataFrames, a summary, plots and a parquet file.

Built from the parts of one or more workers by :meth:`LoadResult.from_parts`, which
concatenates their rows and adds their HDR histograms (an exact merge). pandas,
matplotlib and pyarrow are imported where they are used, so ``import nbstream``
stays light.
"""

from __future__ import annotations

import html
import math
import os
import platform
from collections.abc import Sequence
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import numpy as np

from nbstream.loadtest import faults, frames, storage
from nbstream.loadtest.columns import PartialResult
from nbstream.loadtest.histograms import HISTOGRAMS, new_histogram
from nbstream.loadtest.hugepages import without_huge_pages
from nbstream.loadtest.metrics import PERCENTILES, Metric, format_value, metrics

if TYPE_CHECKING:
    import pandas as pd
    from hdrh.histogram import HdrHistogram

    from nbstream.loadtest.plot import ResultFigure, Theme

__all__ = ["PERCENTILES", "LoadResult", "library_versions"]


def library_versions() -> dict[str, str]:
    """Versions of Python, the libraries that shape the numbers, and the machine."""
    versions = {"python": platform.python_version(), "platform": platform.platform(),
                "cpus": str(os.cpu_count())}
    for package in ("nbstream", "websockets", "picows", "msgspec", "pandas", "numpy",
                    "hdrhistogram"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "unknown"
    return versions


class LoadResult:
    """The rows, histograms and parameters of a finished load test.

    Look at :meth:`summary` first (it is also what the notebook shows), then
    :attr:`messages` (one row per message), :attr:`connections` (one per connection)
    and :attr:`timeseries` (per second); a scenario's :attr:`steps`, :attr:`checks`
    and :attr:`iterations`; :meth:`plot` draws them, :meth:`compare` sets two runs side
    by side, :meth:`to_parquet` keeps them.
    """

    def __init__(self, messages: pd.DataFrame, connections: pd.DataFrame,
                 histograms: dict[str, HdrHistogram], parameters: dict[str, Any],
                 started_at: pd.Timestamp, versions: dict[str, str],
                 iterations: pd.DataFrame | None = None,
                 checks: pd.DataFrame | None = None) -> None:
        self.messages = messages
        """One row per message; columns and types: ``nbstream.loadtest.recorder.MessageRow``."""
        self.connections = connections
        """One row per connection; columns: ``nbstream.loadtest.recorder.ConnectionRow``."""
        self.histograms = histograms
        """HDR histograms (microseconds) of successful ``latency``, ``latency_corrected``,
        ``ttft``, ``ttft_corrected`` (from the intended time) and ``connect`` latencies;
        the summary's percentiles come from them."""
        self.parameters = parameters
        """The test's arguments (target, model, connections, rate...)."""
        self.started_at = started_at
        """When the test started (UTC); every ``*_at`` column counts seconds from it."""
        self.versions = versions
        """Python, library versions and the machine the load came from."""
        open_model = parameters.get("model") == "open"
        self.iterations = (iterations if iterations is not None
                           else frames.iteration_frame({}, open_model))
        """A scenario's iterations, one row each (``nbstream.loadtest.recorder.IterationRow``);
        empty for the built-in flow."""
        self.checks = checks if checks is not None else frames.checks_frame({})
        """A scenario's checks, one row per name: ``passes``, ``fails``, ``rate``."""

    # -- building ------------------------------------------------------------------------

    @classmethod
    def from_parts(cls, parts: Sequence[PartialResult], parameters: dict[str, Any]) -> LoadResult:
        """Merge the parts of one test (from one or many workers) into a result.

        Rows are concatenated and sorted, histograms added; the merge is exact, so the
        result is the same whichever worker measured which connection.
        """
        import pandas as pd

        started = min(part.started_at for part in parts)
        histograms = {}
        for name in HISTOGRAMS:
            histograms[name] = new_histogram()
            for part in parts:
                histograms[name].decode_and_add(part.histograms[name])
        open_model = parameters.get("model") == "open"
        with without_huge_pages():
            messages = frames.message_frame(frames.merged(parts, started, "messages"),
                                            open_model)
            connections = frames.connection_frame(frames.merged(parts, started, "connections"),
                                                  messages)
            iterations = frames.iteration_frame(frames.merged(parts, started, "iterations"),
                                                open_model)
        transports = sorted({part.transport for part in parts})
        return cls(messages, connections, histograms,
                   {**parameters, "transport": "+".join(transports)},
                   pd.Timestamp(started, unit="s", tz="UTC"), library_versions(),
                   iterations, frames.checks_frame(frames.merged_checks(parts)))

    # -- derived tables -------------------------------------------------------------------

    @cached_property
    def steps(self) -> pd.DataFrame:
        """A scenario's steps, one row per name (index ``step``): ``count`` rows,
        ``errors``, and the ``p50``/``p90``/``p99``/``max`` latency (seconds) of the
        successful ones. Empty for the built-in flow."""
        return frames.steps_frame(self.messages)

    @cached_property
    def timeseries(self) -> pd.DataFrame:
        """Per-second buckets since the start: sent, completed, errors, in_flight (at the
        bucket's end) and the p50/p99 latency (seconds) of the messages completed in it.

        ``p99_corrected`` is the p99 of ``latency_corrected`` (the open model's view).
        A test run with ``faults=`` also has ``fault``: the faults in force during the
        second ("" for none).
        """
        import pandas as pd

        m = self.messages
        times = np.concatenate([m["sent_at"].dropna().to_numpy(),
                                m["done_at"].dropna().to_numpy()])
        buckets = math.floor(times.max()) + 1 if len(times) else 0
        index = pd.RangeIndex(buckets, name="second")

        def per_second(at: pd.Series[float]) -> np.ndarray[Any, np.dtype[np.int64]]:
            return np.bincount(np.floor(at.dropna().to_numpy()).astype(np.int64),
                               minlength=buckets)

        ok = m[m["error"].isna()]
        failed = m[m["error"].notna()]
        sent = per_second(m["sent_at"])
        settled = per_second(m.loc[m["sent_at"].notna(), "done_at"])
        frame = pd.DataFrame({
            "sent": sent,
            "completed": per_second(ok["done_at"]),
            "errors": per_second(failed["done_at"]),
            "in_flight": np.cumsum(sent) - np.cumsum(settled),
        }, index=index)
        groups = ok.groupby(np.floor(ok["done_at"]).astype("int64"))
        frame["p50"] = groups["latency"].quantile(0.5).reindex(index)
        frame["p99"] = groups["latency"].quantile(0.99).reindex(index)
        frame["p99_corrected"] = groups["latency_corrected"].quantile(0.99).reindex(index)
        if windows := faults.windows_of(self.parameters):
            frame["fault"] = faults.per_second(windows, buckets)
        return frame

    def summary(self) -> pd.DataFrame:
        """One row per metric: value (seconds, counts or messages/s) and unit.

        Latency percentiles come from the HDR histograms (3 significant digits) of
        successful messages. Throughput is successful messages per second between the
        first send and the last outcome (``duration``). ``send_lag`` is how late messages left after
        their intended time (the open model's timetable, kept to about a millisecond).
        A scenario adds its iterations (``iterations_failed``, ``iteration_p99`` without
        think time...), its steps (``step.<name>.p99``...) and checks
        (``check.<name>.fails``). A test run with ``faults=`` adds ``inside_faults.*``
        and ``outside_faults.*`` rows (requests, errors, throughput, p50, p99 of messages
        sent inside a fault window, and outside all of them). The test's parameters
        (``transport``: the library that drove the connections), versions and start
        time are in ``.attrs``; ``print(result)`` shows the same table with readable
        units.
        """
        import pandas as pd

        frame = pd.DataFrame(self._metrics, columns=["metric", "value", "unit"])
        frame = frame.astype({"value": "float64"}).set_index("metric")
        frame.attrs.update(parameters=self.parameters, versions=self.versions,
                           started_at=self.started_at.isoformat(),
                           transport=self.parameters.get("transport", "websockets"))
        return frame

    @cached_property
    def _metrics(self) -> list[Metric]:
        rows = metrics(self.messages, self.connections, self.histograms, self.iterations,
                       self.steps, self.checks)
        return rows + faults.inside_outside(self.messages, faults.windows_of(self.parameters))

    # -- comparing and plotting --------------------------------------------------------

    def compare(self, other: LoadResult, labels: Sequence[str] = ("a", "b")) -> pd.DataFrame:
        """Both summaries side by side, with ``change`` = b / a - 1 (0.1 is 10 % more).

        For the picture, draw both runs on the same axes: ``a.plot(b)``.
        """
        import pandas as pd

        first, second = self.summary(), other.summary()
        a, b = labels
        frame = pd.concat({a: first["value"], b: second["value"]}, axis=1)
        frame["unit"] = first["unit"].combine_first(second["unit"])
        frame["change"] = frame[b] / frame[a] - 1
        return frame

    def plot(self, *others: LoadResult, labels: Sequence[str] | None = None,
             theme: Theme = "light") -> ResultFigure:
        """A figure: latency CDF (log scale), throughput, p99 and errors over time, and
        for a scenario the latency of each step and the checks.

        Pass other results to draw them on the same axes (``a.plot(b, labels=["before",
        "after"])``). Returns a matplotlib Figure that shows itself as an image when it is
        a cell's last expression (no ``%matplotlib`` needed); save it with
        ``fig.savefig("load.png")``. ``theme="dark"`` draws light text for a dark page.
        """
        from nbstream.loadtest.plot import plot_results

        return plot_results([self, *others], labels, theme)

    # -- storage ----------------------------------------------------------------------------

    def to_parquet(self, path: str | os.PathLike[str]) -> None:
        """Write everything to one parquet file; read it back with :meth:`read_parquet`.

        The file's table is :attr:`messages` (any parquet reader sees the rows); the
        connections, iterations, checks, histograms, parameters and versions travel in
        its metadata.
        """
        storage.write(self, path)

    @classmethod
    def read_parquet(cls, path: str | os.PathLike[str]) -> LoadResult:
        """Read a result written by :meth:`to_parquet`.

        Raises:
            ValueError: if the file was not written by ``LoadResult.to_parquet``.
        """
        return cls(**storage.read(path))

    # -- display ------------------------------------------------------------------------------

    def _title(self) -> str:
        p = self.parameters
        scenario = p.get("scenario")
        unit = "it/s" if scenario else "msg/s"
        if p["model"] == "open":
            shape = f"open model, {p['rate']:g} {unit} over {p['connections']} connections"
        elif p["duration"] is not None:
            shape = f"closed model, {p['connections']} connections for {p['duration']:g} s"
        elif scenario:
            shape = (f"closed model, {p['connections']} users x {p['iterations']} "
                     "iterations")
        else:
            shape = f"closed model, {p['connections']} connections x {p['messages']} messages"
        what = f"scenario {scenario}, " if scenario else ""
        processes = f", {p['processes']} processes" if p["processes"] > 1 else ""
        protocol = p.get("protocol", "nbstream")
        transport = p.get("transport", "websockets")
        return (f"load test of {p['target']}: {what}{shape}{processes} "
                f"({protocol} protocol, {transport} transport)")

    def _formatted(self) -> pd.DataFrame:
        frame = self.summary()
        values = [format_value(v, u) for v, u in zip(frame["value"], frame["unit"], strict=True)]
        return frame.assign(value=values)[["value"]]

    def __str__(self) -> str:
        versions = ", ".join(f"{k} {self.versions[k]}"
                             for k in ("nbstream", "websockets", "python"))
        return (f"{self._title()}\nstarted {self.started_at:%Y-%m-%d %H:%M:%S} UTC; {versions}\n"
                f"{self._formatted().to_string(header=False)}")

    def __repr__(self) -> str:
        metrics = {name: value for name, value, _ in self._metrics}
        return (f"<LoadResult {self.parameters['model']}: {metrics['requests']:.0f} messages, "
                f"{metrics['errors']:.0f} errors, {metrics['throughput']:.0f} msg/s, "
                f"p99 {format_value(metrics['latency_p99'], 's')}>")

    def _repr_html_(self) -> str:
        versions = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        return (f"<div><b>{html.escape(self._title())}</b><br>"
                f"<small>started {self.started_at:%Y-%m-%d %H:%M:%S} UTC</small>"
                f"{self._formatted().to_html(header=False)}"
                f"<small>{html.escape(versions)}</small></div>")
