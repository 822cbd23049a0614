"""The DataFrames of a LoadResult, built from the merged columns of its parts.

``messages``, ``connections`` and ``iterations`` (one row each) and the derived
tables of a scenario: ``steps`` (one row per step name) and ``checks`` (one row per
check). pandas is imported here, where the frames are built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from nbstream.loadtest.columns import Checks, Columns, PartialResult

if TYPE_CHECKING:
    import pandas as pd

TIME_COLUMNS = ("intended_at", "sent_at", "first_reply_at", "done_at",
                "connect_started_at", "connected_at", "closed_at", "started_at")
STEP_COLUMNS = ("count", "errors", "p50", "p90", "p99", "max")
"""The columns of ``LoadResult.steps`` (latencies in seconds, over successful rows)."""


def merged(parts: Sequence[PartialResult], started: float, name: str) -> Columns:
    """Table ``name`` ("messages", "connections", "iterations") of every part, on one
    time axis starting at ``started``."""
    tables = [_shifted(getattr(p, name), p.started_at - started) for p in parts]
    tables = [t for t in tables if t]
    if not tables:
        return {}
    if len(tables) == 1:
        return tables[0]  # one worker: its columns as they are, not a copy
    return {key: np.concatenate([t[key] for t in tables]) for key in tables[0]}


def merged_checks(parts: Sequence[PartialResult]) -> Checks:
    """The checks of every part, added up."""
    totals: dict[str, list[int]] = {}
    for part in parts:
        for name, (passes, fails) in part.checks.items():
            counts = totals.setdefault(name, [0, 0])
            counts[0] += passes
            counts[1] += fails
    return {name: (p, f) for name, (p, f) in totals.items()}


def _shifted(columns: Columns, offset: float) -> Columns:
    """Columns of a part whose clock started ``offset`` seconds after the earliest part."""
    if not offset:
        return columns
    return {k: v + offset if k in TIME_COLUMNS else v for k, v in columns.items()}


def message_frame(columns: Columns, open_model: bool) -> pd.DataFrame:
    """``LoadResult.messages``: sorted by connection and seq (closed) or seq (open)."""
    import pandas as pd

    order = sort_order([columns[k] for k in (["seq"] if open_model else ["connection", "seq"])])
    connection = _ordered(columns["connection"], order)
    step = columns.get("step", np.full(len(connection), None, dtype=object))
    return pd.DataFrame({
        "connection": pd.arrays.IntegerArray(connection, connection < 0),
        **{k: _ordered(columns[k], order)
           for k in ("seq", "intended_at", "sent_at", "first_reply_at", "done_at", "latency",
                     "latency_corrected", "ttft", "replies", "bytes_out", "bytes_in")},
        "error": strings(columns["error"], order),
        "step": strings(step, order),
    }, copy=False)  # the columns are the result's alone: a copy would only cost time


def strings(values: npt.NDArray[Any], order: npt.NDArray[np.intp] | None = None
            ) -> pd.api.extensions.ExtensionArray:
    """``values`` (str or None) as pandas' ``string`` dtype, None as <NA>, in ``order``.

    Converts each distinct string once: a load test's error and step columns hold a
    few names (or None) a million times, and converting every row costs as much as
    the rest of the frame. The rows are reordered as integer codes, not as objects.
    """
    import pandas as pd

    codes, names = pd.factorize(values)
    return pd.array(names, dtype="string").take(_ordered(codes, order), allow_fill=True)


def _ordered(values: npt.NDArray[Any], order: npt.NDArray[np.intp] | None) -> npt.NDArray[Any]:
    return values if order is None else values[order]


def sort_order(keys: Sequence[npt.NDArray[np.int64]]) -> npt.NDArray[np.intp] | None:
    """The stable order of rows sorted by ``keys`` (the first the most significant), or
    None when they are in that order already (one pass over the keys, no sort)."""
    rows = len(keys[0])
    if rows < 2:
        return None
    tied = np.ones(rows - 1, dtype=bool)
    ordered = np.zeros(rows - 1, dtype=bool)
    for key in keys:
        step = np.diff(key)
        ordered |= tied & (step > 0)
        tied &= step == 0
    if (ordered | tied).all():
        return None
    return np.lexsort(keys[::-1])


def connection_frame(columns: Columns, messages: pd.DataFrame) -> pd.DataFrame:
    """``LoadResult.connections``, with per-connection totals from ``messages``."""
    import pandas as pd

    connection = messages["connection"].to_numpy(dtype=np.int64, na_value=-1)
    taken = connection >= 0  # an open-model message no connection took counts nowhere
    indices = connection[taken]
    size = int(max(indices.max(initial=-1), columns["connection"].max(initial=-1))) + 1
    failed = messages["error"].notna().to_numpy()[taken]

    def total(weights: npt.NDArray[Any] | None) -> npt.NDArray[np.int64]:
        sums = np.bincount(indices, weights=weights, minlength=size)
        return sums.astype(np.int64)[columns["connection"]]

    frame = pd.DataFrame({
        **{k: columns[k] for k in ("connection", "connect_started_at", "connected_at",
                                   "connect_latency", "closed_at")},
        "messages": total(None),
        "completed": total(~failed),
        "errors": total(failed),
        "bytes_out": total(messages["bytes_out"].to_numpy()[taken]),
        "bytes_in": total(messages["bytes_in"].to_numpy()[taken]),
        "close_code": pd.array(list(columns["close_code"]), dtype="Int64"),
        "close_reason": strings(columns["close_reason"]),
        "error": strings(columns["error"]),
    })
    return frame.sort_values("connection", ignore_index=True)


ITERATION_COLUMNS = ("connection", "iteration", "intended_at", "started_at", "done_at",
                     "duration", "think_time", "error")


def iteration_frame(columns: Columns, open_model: bool) -> pd.DataFrame:
    """``LoadResult.iterations`` (empty, with its columns, for the built-in flow)."""
    import pandas as pd

    if not columns:
        return pd.DataFrame({
            "connection": pd.Series(dtype="int64"), "iteration": pd.Series(dtype="int64"),
            **{k: pd.Series(dtype="float64") for k in ITERATION_COLUMNS[2:-1]},
            "error": pd.Series(dtype="string")})
    order = sort_order([columns[k] for k in
                        (["iteration"] if open_model else ["connection", "iteration"])])
    return pd.DataFrame({
        **{k: _ordered(columns[k], order) for k in ITERATION_COLUMNS[:-1]},
        "error": strings(columns["error"], order),
    }, copy=False)


def steps_frame(messages: pd.DataFrame) -> pd.DataFrame:
    """One row per step name: rows, errors, latency percentiles of its successes."""
    import pandas as pd

    timed = messages[messages["step"].notna()]
    if timed.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c in ("count", "errors")
                                          else "float64") for c in STEP_COLUMNS},
                            index=pd.Index([], name="step", dtype="string"))
    groups = timed.groupby("step", sort=True)
    ok = timed[timed["error"].isna()].groupby("step")["latency"]
    frame = pd.DataFrame({
        "count": groups.size(),
        "errors": groups["error"].count(),
    })
    for column, quantile in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        frame[column] = ok.quantile(quantile).reindex(frame.index)
    frame["max"] = ok.max().reindex(frame.index)
    frame.index = frame.index.astype("string")
    return frame.astype({"count": "int64", "errors": "int64"})


def checks_frame(checks: Checks) -> pd.DataFrame:
    """One row per check name: passes, fails and the pass rate."""
    import pandas as pd

    names = sorted(checks)
    passes = np.array([checks[n][0] for n in names], dtype=np.int64)
    fails = np.array([checks[n][1] for n in names], dtype=np.int64)
    total = passes + fails
    return pd.DataFrame({"passes": passes, "fails": fails,
                         "rate": np.divide(passes, total, out=np.full(len(names), np.nan),
                                           where=total > 0)},
                        index=pd.Index(names, name="check", dtype="string"))


def checks_of(frame: pd.DataFrame) -> Checks:
    """The checks of a ``LoadResult.checks`` frame (to store or merge them)."""
    return {str(name): (int(row["passes"]), int(row["fails"]))
            for name, row in frame.iterrows()}

