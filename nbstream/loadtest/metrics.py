"""The metrics of ``LoadResult.summary()``: one (name, value, unit) per figure.

Latency percentiles come from the HDR histograms; a scenario's steps, checks and
iterations add their own rows (``step.<name>.p99``, ``check.<name>.fails``,
``iterations_failed``...). Also how the printed summary formats each unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nbstream.loadtest.thresholds import failed_connections

if TYPE_CHECKING:
    import pandas as pd
    from hdrh.histogram import HdrHistogram

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
"""Latency percentiles in the summary (and ``max``)."""

Metric = tuple[str, float, str]


def metrics(messages: pd.DataFrame, connections: pd.DataFrame,
            histograms: Mapping[str, HdrHistogram], iterations: pd.DataFrame,
            steps: pd.DataFrame, checks: pd.DataFrame) -> list[Metric]:
    """Every row of the summary, in order."""
    m, c = messages, connections
    rows: list[Metric] = [
        ("connections", len(c), "count"),
        ("connections_failed", int(failed_connections(c).sum()), "count"),
    ]
    rows += [(f"connection_errors.{code}", n, "count")
             for code, n in _counts(c["error"]).items()]
    rows += _percentiles("connect", histograms["connect"], (50.0, 99.0))
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
        rows += _percentiles(name, histograms[name], PERCENTILES, with_max=True)
    if len(iterations):
        rows += _iteration_metrics(iterations)
    for step, row in steps.iterrows():
        rows += [(f"step.{step}.count", row["count"], "count"),
                 (f"step.{step}.errors", row["errors"], "count")]
        rows += [(f"step.{step}.{column}", row[column], "s")
                 for column in ("p50", "p90", "p99", "max")]
    for check, row in checks.iterrows():
        rows += [(f"check.{check}.passes", row["passes"], "count"),
                 (f"check.{check}.fails", row["fails"], "count")]
    return rows


def _iteration_metrics(iterations: pd.DataFrame) -> list[Metric]:
    ran = iterations[iterations["started_at"].notna()]
    ok = ran[ran["error"].isna()]
    active = (ok["duration"] - ok["think_time"]).dropna()
    window = float(ran["done_at"].max() - ran["started_at"].min()) if len(ok) else math.nan
    rows: list[Metric] = [
        ("iterations", len(iterations), "count"),
        ("iterations_completed", len(ok), "count"),
        ("iterations_failed", int(iterations["error"].notna().sum()), "count"),
        ("iteration_rate", len(ok) / window if window > 0 else math.nan, "it/s"),
    ]
    rows += [(f"iteration_p{p:g}", float(active.quantile(p / 100)) if len(active) else math.nan,
              "s") for p in (50.0, 99.0)]
    rows.append(("think_time_mean", float(ran["think_time"].mean()) if len(ran) else math.nan,
                 "s"))
    return rows


def _percentiles(name: str, histogram: HdrHistogram, percentiles: Sequence[float],
                 with_max: bool = False) -> list[Metric]:
    empty = histogram.get_total_count() == 0
    rows = [(f"{name}_p{p:g}", math.nan if empty else
             histogram.get_value_at_percentile(p) / 1e6, "s") for p in percentiles]
    if with_max:
        rows.append((f"{name}_max", math.nan if empty else histogram.get_max_value() / 1e6, "s"))
    return rows


def _counts(errors: pd.Series[Any]) -> dict[str, int]:
    counts = errors.value_counts()
    return {str(code): int(n) for code, n in counts.items() if n > 0}


def format_value(value: float, unit: str) -> str:
    """``value`` in ``unit`` as the printed summary shows it (``12.3 ms``, ``1,234``)."""
    if math.isnan(value):
        return "-"
    if unit == "s":
        for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if abs(value) >= scale or suffix == "µs":
                return f"{value / scale:.3g} {suffix}"
    if unit in ("msg/s", "it/s"):
        return f"{value:,.1f} {unit}"
    return f"{value:,.0f}"
