"""LoadResult: a finished load test as DataFrames, a summary, plots and a parquet file.

Built from the parts of one or more workers by :meth:`LoadResult.from_parts`, which
concatenates their rows and adds their HDR histograms (an exact merge). pandas,
matplotlib and pyarrow are imported where they are used, so ``import nbstream``
stays light.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import platform
from collections.abc import Sequence
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import numpy as np

from nbstream.loadtest import faults
from nbstream.loadtest.recorder import (
    HISTOGRAMS,
    Columns,
    PartialResult,
    decode_histogram,
    new_histogram,
)
from nbstream.loadtest.thresholds import failed_connections

if TYPE_CHECKING:
    import pandas as pd
    from hdrh.histogram import HdrHistogram

    from nbstream.loadtest.plot import ResultFigure, Theme

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
"""Latency percentiles in the summary (and ``max``)."""
_TIME_COLUMNS = ("intended_at", "sent_at", "first_reply_at", "done_at",
                 "connect_started_at", "connected_at", "closed_at")
_METADATA_KEY = b"nbstream.loadtest"
_CONNECTIONS_KEY = b"nbstream.connections"


def library_versions() -> dict[str, str]:
    """Versions of Python, the libraries that shape the numbers, and the machine."""
    versions = {"python": platform.python_version(), "platform": platform.platform(),
                "cpus": str(os.cpu_count())}
    for package in ("nbstream", "websockets", "msgspec", "pandas", "numpy", "hdrhistogram"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "unknown"
    return versions


class LoadResult:
    """The rows, histograms and parameters of a finished load test.

    Look at :meth:`summary` first (it is also what the notebook shows), then
    :attr:`messages` (one row per message), :attr:`connections` (one per connection)
    and :attr:`timeseries` (per second); :meth:`plot` draws them, :meth:`compare`
    sets two runs side by side, :meth:`to_parquet` keeps them.
    """

    def __init__(self, messages: pd.DataFrame, connections: pd.DataFrame,
                 histograms: dict[str, HdrHistogram], parameters: dict[str, Any],
                 started_at: pd.Timestamp, versions: dict[str, str]) -> None:
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

    # -- building ------------------------------------------------------------------------

    @classmethod
    def from_parts(cls, parts: Sequence[PartialResult], parameters: dict[str, Any]) -> LoadResult:
        """Merge the parts of one test (from one or many workers) into a result.

        Rows are concatenated and sorted, histograms added; the merge is exact, so the
        result is the same whichever worker measured which connection.
        """
        import pandas as pd

        started = min(part.started_at for part in parts)
        messages = _concat([_shifted(p.messages, p.started_at - started) for p in parts])
        connections = _concat([_shifted(p.connections, p.started_at - started) for p in parts])
        histograms = {}
        for name in HISTOGRAMS:
            histograms[name] = new_histogram()
            for part in parts:
                histograms[name].decode_and_add(part.histograms[name])
        message_frame = _message_frame(messages, parameters.get("model") == "open")
        return cls(message_frame, _connection_frame(connections, message_frame), histograms,
                   parameters, pd.Timestamp(started, unit="s", tz="UTC"), library_versions())

    # -- derived tables -------------------------------------------------------------------

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
        The test's parameters, versions and start time are in ``.attrs``; ``print(result)``
        shows the same table with readable units. A test run with ``faults=`` adds
        ``inside_faults.*`` and ``outside_faults.*`` rows (requests, errors, throughput,
        p50, p99 of messages sent inside a fault window, and outside all of them).
        """
        import pandas as pd

        frame = pd.DataFrame(self._metrics, columns=["metric", "value", "unit"])
        frame = frame.astype({"value": "float64"}).set_index("metric")
        frame.attrs.update(parameters=self.parameters, versions=self.versions,
                           started_at=self.started_at.isoformat())
        return frame

    @cached_property
    def _metrics(self) -> list[tuple[str, float, str]]:
        m, c = self.messages, self.connections
        rows: list[tuple[str, float, str]] = [
            ("connections", len(c), "count"),
            ("connections_failed", int(failed_connections(c).sum()), "count"),
        ]
        rows += [(f"connection_errors.{code}", n, "count")
                 for code, n in _counts(c["error"]).items()]
        rows += _percentiles("connect", self.histograms["connect"], (50.0, 99.0))
        completed = int(m["error"].isna().sum())
        rows += [
            ("requests", len(m), "count"),
            ("sent", int(m["sent_at"].notna().sum()), "count"),
            ("completed", completed, "count"),
            ("errors", int(m["error"].notna().sum()), "count"),
        ]
        rows += [(f"errors.{code}", n, "count") for code, n in _counts(m["error"]).items()]
        window = float(m["done_at"].max() - m["sent_at"].min()) if completed else math.nan
        lag = (m["sent_at"] - m["intended_at"]).dropna()
        rows += [
            ("duration", window, "s"),
            ("throughput", completed / window if window > 0 else math.nan, "msg/s"),
            ("send_lag_p50", float(lag.quantile(0.5)) if len(lag) else math.nan, "s"),
            ("send_lag_p99", float(lag.quantile(0.99)) if len(lag) else math.nan, "s"),
        ]
        for name in ("latency", "latency_corrected", "ttft", "ttft_corrected"):
            rows += _percentiles(name, self.histograms[name], PERCENTILES, with_max=True)
        return rows + faults.inside_outside(m, faults.windows_of(self.parameters))

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
        """A figure: latency CDF (log scale), throughput, p99 and errors over time.

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
        connections, histograms, parameters and versions travel in its metadata.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(self.messages, preserve_index=False)
        connections = pa.Table.from_pandas(self.connections, preserve_index=False)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, connections.schema) as writer:
            writer.write_table(connections)
        info = {
            "format": 1,
            "parameters": self.parameters,
            "started_at": self.started_at.isoformat(),
            "versions": self.versions,
            "histograms": {k: h.encode().decode("ascii") for k, h in self.histograms.items()},
        }
        metadata = {
            **(table.schema.metadata or {}),
            _METADATA_KEY: json.dumps(info).encode(),
            _CONNECTIONS_KEY: base64.b64encode(sink.getvalue().to_pybytes()),
        }
        pq.write_table(table.replace_schema_metadata(metadata), path)

    @classmethod
    def read_parquet(cls, path: str | os.PathLike[str]) -> LoadResult:
        """Read a result written by :meth:`to_parquet`.

        Raises:
            ValueError: if the file was not written by ``LoadResult.to_parquet``.
        """
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        metadata = table.schema.metadata or {}
        if _METADATA_KEY not in metadata:
            raise ValueError(f"{os.fspath(path)!r} is not a file written by LoadResult.to_parquet")
        info = json.loads(metadata[_METADATA_KEY])
        connections = pa.ipc.open_stream(base64.b64decode(metadata[_CONNECTIONS_KEY])).read_all()
        histograms = {k: decode_histogram(v.encode("ascii")) for k, v in info["histograms"].items()}
        return cls(table.to_pandas(), connections.to_pandas(), histograms, info["parameters"],
                   pd.Timestamp(info["started_at"]), info["versions"])

    # -- display ------------------------------------------------------------------------------

    def _title(self) -> str:
        p = self.parameters
        if p["model"] == "open":
            shape = f"open model, {p['rate']:g} msg/s over {p['connections']} connections"
        elif p["duration"] is not None:
            shape = f"closed model, {p['connections']} connections for {p['duration']:g} s"
        else:
            shape = f"closed model, {p['connections']} connections x {p['messages']} messages"
        processes = f", {p['processes']} processes" if p["processes"] > 1 else ""
        return f"load test of {p['target']}: {shape}{processes}"

    def _formatted(self) -> pd.DataFrame:
        frame = self.summary()
        return frame.assign(value=[_format(v, u) for v, u in zip(frame["value"], frame["unit"],
                                                                   strict=True)])[["value"]]

    def __str__(self) -> str:
        versions = ", ".join(f"{k} {self.versions[k]}"
                             for k in ("nbstream", "websockets", "python"))
        return (f"{self._title()}\nstarted {self.started_at:%Y-%m-%d %H:%M:%S} UTC; {versions}\n"
                f"{self._formatted().to_string(header=False)}")

    def __repr__(self) -> str:
        metrics = {name: value for name, value, _ in self._metrics}
        return (f"<LoadResult {self.parameters['model']}: {metrics['requests']:.0f} messages, "
                f"{metrics['errors']:.0f} errors, {metrics['throughput']:.0f} msg/s, "
                f"p99 {_format(metrics['latency_p99'], 's')}>")

    def _repr_html_(self) -> str:
        versions = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        return (f"<div><b>{html.escape(self._title())}</b><br>"
                f"<small>started {self.started_at:%Y-%m-%d %H:%M:%S} UTC</small>"
                f"{self._formatted().to_html(header=False)}"
                f"<small>{html.escape(versions)}</small></div>")


def _percentiles(name: str, histogram: HdrHistogram, percentiles: Sequence[float],
                 with_max: bool = False) -> list[tuple[str, float, str]]:
    empty = histogram.get_total_count() == 0
    rows = [(f"{name}_p{p:g}", math.nan if empty else
             histogram.get_value_at_percentile(p) / 1e6, "s") for p in percentiles]
    if with_max:
        rows.append((f"{name}_max", math.nan if empty else histogram.get_max_value() / 1e6, "s"))
    return rows


def _counts(errors: pd.Series[Any]) -> dict[str, int]:
    counts = errors.value_counts()
    return {str(code): int(n) for code, n in counts.items() if n > 0}


def _format(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    if unit == "s":
        for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if abs(value) >= scale or suffix == "µs":
                return f"{value / scale:.3g} {suffix}"
    if unit == "msg/s":
        return f"{value:,.1f} msg/s"
    return f"{value:,.0f}"


def _shifted(columns: Columns, offset: float) -> Columns:
    """Columns of a part whose clock started ``offset`` seconds after the earliest part."""
    if not offset:
        return columns
    return {k: v + offset if k in _TIME_COLUMNS else v for k, v in columns.items()}


def _concat(parts: list[Columns]) -> Columns:
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _message_frame(columns: Columns, open_model: bool) -> pd.DataFrame:
    import pandas as pd

    connection = columns["connection"]
    frame = pd.DataFrame({
        "connection": pd.arrays.IntegerArray(connection, connection < 0),
        **{k: columns[k] for k in ("seq", "intended_at", "sent_at", "first_reply_at",
                                   "done_at", "latency", "latency_corrected", "ttft",
                                   "replies", "bytes_out", "bytes_in")},
        "error": pd.array(columns["error"], dtype="string"),
    })
    order = ["seq"] if open_model else ["connection", "seq"]
    return frame.sort_values(order, kind="stable", ignore_index=True)


def _connection_frame(columns: Columns, messages: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    failed = messages["error"].notna().to_numpy()
    totals = pd.DataFrame({
        "connection": messages["connection"],
        "messages": 1,
        "completed": ~failed,
        "errors": failed,
        "bytes_out": messages["bytes_out"],
        "bytes_in": messages["bytes_in"],
    }).groupby("connection").sum().reindex(columns["connection"], fill_value=0)
    frame = pd.DataFrame({
        **{k: columns[k] for k in ("connection", "connect_started_at", "connected_at",
                                   "connect_latency", "closed_at")},
        **{k: totals[k].to_numpy(dtype=np.int64) for k in totals.columns},
        "close_code": pd.array(list(columns["close_code"]), dtype="Int64"),
        "close_reason": pd.array(columns["close_reason"], dtype="string"),
        "error": pd.array(columns["error"], dtype="string"),
    })
    return frame.sort_values("connection", ignore_index=True)
