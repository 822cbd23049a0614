"""A worker's records as typed columns and encoded histograms, ready to merge.

:func:`to_part` turns what a :class:`~nbstream.loadtest.recorder.Recorder` kept into a
:class:`PartialResult`: numpy columns (seconds since the shared start, NaN for
"never") and HDR histograms. It runs once, after the load, off the data path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from nbstream.loadtest.histograms import histogram_of
from nbstream.loadtest.hugepages import without_huge_pages

Columns = dict[str, npt.NDArray[Any]]

Checks = dict[str, tuple[int, int]]
"""Scenario checks by name: (passes, fails)."""


@dataclass(frozen=True)
class PartialResult:
    """What one worker measured: its rows as typed columns and encoded histograms.

    Picklable and small enough to send between processes; merge parts with
    ``LoadResult.from_parts``.
    """

    index: int
    started_at: float
    """Wall-clock time (``time.time()``) of the shared start; row times count from it."""
    messages: Columns
    connections: Columns
    histograms: dict[str, bytes]
    iterations: Columns = field(default_factory=dict)
    """Scenario iterations (empty for the built-in flow)."""
    checks: Checks = field(default_factory=dict)
    transport: str = "websockets"
    """The library that drove the connections."""


def to_part(index: int, started_at: float, t0: int, messages: Sequence[Any],
            connections: Sequence[Any], iterations: Sequence[Any], checks: Checks,
            transport: str) -> PartialResult:
    """The columns and histograms of everything a worker recorded (clock zero ``t0``).

    ``messages``, ``connections`` and ``iterations`` are the recorder's
    ``MessageRecord``, ``ConnectionRecord`` and ``IterationRecord`` objects.
    """
    with without_huge_pages():
        message_columns = _message_columns(messages, t0)
        connection_columns = _connection_columns(connections, t0)
        ok = is_none(message_columns["error"])
        values = {name: message_columns[name]
                  for name in ("latency", "latency_corrected", "ttft")}
        values["ttft_corrected"] = (message_columns["first_reply_at"]
                                    - message_columns["intended_at"])
        histograms = {name: histogram_of(v[ok]).encode() for name, v in values.items()}
        connect = connection_columns["connect_latency"]
        histograms["connect"] = histogram_of(connect[~np.isnan(connect)]).encode()
        iteration_columns = _iteration_columns(iterations, t0) if iterations else {}
    return PartialResult(index, started_at, message_columns, connection_columns, histograms,
                         iteration_columns, dict(checks), transport)


def is_none(values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Where an object column holds None (one C loop, not a Python one)."""
    found: npt.NDArray[np.bool_] = np.equal(values, _NONE)
    return found


_NONE = np.array(None, dtype=object)


def _ints(records: Sequence[Any], name: str) -> npt.NDArray[np.int64]:
    return np.fromiter(map(attrgetter(name), records), np.int64, len(records))


def _objects(records: Sequence[Any], name: str) -> npt.NDArray[Any]:
    return np.fromiter(map(attrgetter(name), records), object, len(records))


def _seconds(ns: npt.NDArray[np.int64], t0: int) -> npt.NDArray[np.float64]:
    """Nanosecond clock readings as seconds since ``t0``; 0 ("never") becomes NaN."""
    seconds = (ns - t0) / 1e9
    seconds[ns <= 0] = np.nan
    return seconds


def _message_columns(records: Sequence[Any], t0: int) -> Columns:
    intended, sent = _ints(records, "intended_ns"), _ints(records, "sent_ns")
    first, done = _ints(records, "first_ns"), _ints(records, "done_ns")
    answered = np.fromiter(map(attrgetter("answered"), records), bool, len(records))
    return {
        "connection": _ints(records, "connection"),
        "seq": _ints(records, "seq"),
        "intended_at": _seconds(intended, t0),
        "sent_at": _seconds(sent, t0),
        "first_reply_at": _seconds(first, t0),
        "done_at": _seconds(done, t0),
        "latency": np.where(answered, (done - sent) / 1e9, np.nan),
        "latency_corrected": np.where(answered, (done - intended) / 1e9, np.nan),
        "ttft": np.where((first > 0) & (sent > 0), (first - sent) / 1e9, np.nan),
        "replies": _ints(records, "replies"),
        "bytes_out": _ints(records, "bytes_out"),
        "bytes_in": _ints(records, "bytes_in"),
        "error": _objects(records, "error"),
        "step": _objects(records, "step"),
    }


def _connection_columns(records: Sequence[Any], t0: int) -> Columns:
    started, connected = _ints(records, "started_ns"), _ints(records, "connected_ns")
    return {
        "connection": _ints(records, "connection"),
        "connect_started_at": _seconds(started, t0),
        "connected_at": _seconds(connected, t0),
        "connect_latency": np.where(connected > 0, (connected - started) / 1e9, np.nan),
        "closed_at": _seconds(_ints(records, "closed_ns"), t0),
        "close_code": _objects(records, "close_code"),
        "close_reason": _objects(records, "close_reason"),
        "error": _objects(records, "error"),
    }


def _iteration_columns(records: Sequence[Any], t0: int) -> Columns:
    started, done = _ints(records, "started_ns"), _ints(records, "done_ns")
    return {
        "connection": _ints(records, "connection"),
        "iteration": _ints(records, "iteration"),
        "intended_at": _seconds(_ints(records, "intended_ns"), t0),
        "started_at": _seconds(started, t0),
        "done_at": _seconds(done, t0),
        "duration": np.where(done > 0, (done - started) / 1e9, np.nan),
        "think_time": _ints(records, "think_ns") / 1e9,
        "error": _objects(records, "error"),
    }
