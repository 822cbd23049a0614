"""What a load test records: one row per message and per connection, and HDR histograms.

The runner only writes integer timestamps from an injected clock (``perf_counter_ns``)
into :class:`MessageRecord` / :class:`ConnectionRecord` objects and bumps a few
counters. Everything derived — live :class:`Tick` figures, typed columns, histograms —
is computed from those records here, off the data path. No I/O.

Latencies go into HdrHistogram (microseconds, 3 significant digits) because its
histograms add exactly: the merged histogram of several workers is the histogram of
all their rows (:func:`histogram_of` on the merged column gives the same counts).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

from nbstream.loadtest.errors import LocalError

if TYPE_CHECKING:
    from nbstream.loadtest.plan import PlanPart

Clock = Callable[[], int]
"""A monotonic clock in integer nanoseconds; ``time.perf_counter_ns`` unless injected."""

Columns = dict[str, npt.NDArray[Any]]

HISTOGRAM_LOWEST_US = 1
HISTOGRAM_HIGHEST_US = 86_400_000_000
"""Values are microseconds from 1 µs to one day; longer ones are clamped to a day."""
HISTOGRAM_DIGITS = 3
HISTOGRAMS = ("latency", "latency_corrected", "ttft", "ttft_corrected", "connect")
"""Histogram names; each holds the column of the same name over successful messages,
except ``ttft_corrected`` (``first_reply_at - intended_at``) and ``connect``
(``connect_latency`` of the connections that opened)."""


class MessageRecord:
    """One message as the runner saw it; nanosecond timestamps, 0 meaning "never"."""

    __slots__ = ("answered", "bytes_in", "bytes_out", "connection", "done_ns", "error",
                 "first_ns", "intended_ns", "replies", "sent_ns", "seq")

    def __init__(self, connection: int, seq: int, intended_ns: int, sent_ns: int,
                 bytes_out: int) -> None:
        self.connection = connection
        self.seq = seq
        self.intended_ns = intended_ns
        self.sent_ns = sent_ns
        self.first_ns = 0
        self.done_ns = 0
        self.replies = 0
        self.bytes_out = bytes_out
        self.bytes_in = 0
        self.error: str | None = None
        self.answered = False
        """True when a reply decided the outcome (success or an error envelope)."""


class ConnectionRecord:
    """One connection as the runner saw it; nanosecond timestamps, 0 meaning "never"."""

    __slots__ = ("close_code", "close_reason", "closed_ns", "connected_ns", "connection",
                 "error", "started_ns")

    def __init__(self, connection: int) -> None:
        self.connection = connection
        self.started_ns = 0
        self.connected_ns = 0
        self.closed_ns = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self.error: str | None = None


class MessageRow(TypedDict):
    """The columns of ``LoadResult.messages`` (times in seconds since the start)."""

    connection: int | None
    """Connection index; <NA> for an open-model message no connection could take."""
    seq: int
    """Message number: within its connection (closed model) or in the timetable (open)."""
    intended_at: float
    """When the plan wanted it sent; equals ``sent_at`` in the closed model."""
    sent_at: float
    """When it was handed to the socket; NaN if never sent."""
    first_reply_at: float
    """When its first reply arrived (time to first token); NaN without a reply."""
    done_at: float
    """When its outcome was known (final reply, error, timeout or close)."""
    latency: float
    """``done_at - sent_at`` when a reply decided the outcome, else NaN."""
    latency_corrected: float
    """``done_at - intended_at``: the latency a user arriving on schedule saw."""
    ttft: float
    """``first_reply_at - sent_at``."""
    replies: int
    """Envelopes received for it, the final one included (raw frames: 1)."""
    bytes_out: int
    bytes_in: int
    error: str | None
    """<NA> on success, else the server's error code or a :class:`LocalError`."""


class ConnectionRow(TypedDict):
    """The columns of ``LoadResult.connections`` (times in seconds since the start)."""

    connection: int
    connect_started_at: float
    connected_at: float
    """NaN when the handshake failed."""
    connect_latency: float
    closed_at: float
    messages: int
    completed: int
    errors: int
    bytes_out: int
    bytes_in: int
    close_code: int | None
    """The close code the server sent (1006: none); <NA> if it never connected."""
    close_reason: str
    """The close reason, or why the handshake failed."""
    error: str | None
    """<NA> if the connection did its share, else why it did not."""


@dataclass(frozen=True, slots=True)
class Tick:
    """The live counters of one recorder, plus what finished since its previous tick."""

    at: float
    """Seconds since the start."""
    sent: int
    completed: int
    errors: int
    in_flight: int
    connections_open: int
    done_at: list[float]
    """Completion times of the messages that succeeded since the previous tick."""
    latencies: list[float]
    """Their latencies, in seconds."""


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


class Recorder:
    """Rows and live counters of one worker. The runner writes, everyone else reads.

    Args:
        clock: Integer nanoseconds, monotonic; inject a fake one in tests.
        started_at: Wall-clock start time shared by every worker of the test.
        t0_ns: The clock reading at ``started_at``; defaults to now.
    """

    def __init__(self, clock: Clock = time.perf_counter_ns, started_at: float | None = None,
                 t0_ns: int | None = None) -> None:
        self.clock = clock
        self.t0_ns = clock() if t0_ns is None else t0_ns
        self.started_at = time.time() if started_at is None else started_at
        self.messages: list[MessageRecord] = []
        self.connections: list[ConnectionRecord] = []
        self.finished: list[MessageRecord] = []
        """Messages whose outcome is known, in the order it became known."""
        self.sent = 0
        self.completed = 0
        self.errors = 0
        self.settled = 0
        """Sent messages whose outcome is known (so in flight = sent - settled)."""
        self.connections_open = 0
        self._ticked = 0

    # -- the runner's side ---------------------------------------------------------

    def connection(self, index: int) -> ConnectionRecord:
        """A new connection record, kept."""
        record = ConnectionRecord(index)
        self.connections.append(record)
        return record

    def message(self, connection: int, seq: int, intended_ns: int, sent_ns: int,
                bytes_out: int) -> MessageRecord:
        """A new record for a message being sent now, kept and counted as sent."""
        record = MessageRecord(connection, seq, intended_ns, sent_ns, bytes_out)
        self.messages.append(record)
        self.sent += 1
        return record

    def finish(self, record: MessageRecord, now: int, error: str | None = None,
               answered: bool = True) -> None:
        """Settle a sent message: its reply completed it, or ``error`` ended it."""
        record.done_ns = now
        record.error = error
        record.answered = answered
        self.finished.append(record)
        self.settled += 1
        if error is None:
            self.completed += 1
        else:
            self.errors += 1

    def not_sent(self, connection: int, seq: int, intended_ns: int = 0,
                 error: str = LocalError.NOT_SENT) -> None:
        """Keep a planned message that was never sent (or not known to be), as an error row."""
        record = MessageRecord(connection, seq, intended_ns, 0, 0)
        record.error = error
        self.messages.append(record)
        self.finished.append(record)
        self.errors += 1

    # -- readers ------------------------------------------------------------------------

    def tick(self) -> Tick:
        """Counters now, and the successes since the previous call (for live progress)."""
        t0 = self.t0_ns
        new = self.finished[self._ticked:]
        self._ticked += len(new)
        ok = [r for r in new if r.error is None]
        return Tick(
            at=(self.clock() - t0) / 1e9,
            sent=self.sent,
            completed=self.completed,
            errors=self.errors,
            in_flight=self.sent - self.settled,
            connections_open=self.connections_open,
            done_at=[(r.done_ns - t0) / 1e9 for r in ok],
            latencies=[(r.done_ns - r.sent_ns) / 1e9 for r in ok],
        )

    def to_part(self, index: int) -> PartialResult:
        """Typed columns and encoded histograms of everything recorded, for merging."""
        messages = self._message_columns()
        connections = self._connection_columns()
        ok = np.array([e is None for e in messages["error"]], dtype=bool)
        values = {name: messages[name] for name in ("latency", "latency_corrected", "ttft")}
        values["ttft_corrected"] = messages["first_reply_at"] - messages["intended_at"]
        histograms = {name: histogram_of(v[ok]).encode() for name, v in values.items()}
        connect = connections["connect_latency"]
        histograms["connect"] = histogram_of(connect[~np.isnan(connect)]).encode()
        return PartialResult(index, self.started_at, messages, connections, histograms)

    def _message_columns(self) -> Columns:
        records = self.messages
        t0 = self.t0_ns

        def ints(name: str) -> npt.NDArray[np.int64]:
            return np.fromiter(map(attrgetter(name), records), np.int64, len(records))

        intended, sent = ints("intended_ns"), ints("sent_ns")
        first, done = ints("first_ns"), ints("done_ns")
        answered = np.fromiter(map(attrgetter("answered"), records), bool, len(records))
        return {
            "connection": ints("connection"),
            "seq": ints("seq"),
            "intended_at": _seconds(intended, t0),
            "sent_at": _seconds(sent, t0),
            "first_reply_at": _seconds(first, t0),
            "done_at": _seconds(done, t0),
            "latency": np.where(answered, (done - sent) / 1e9, np.nan),
            "latency_corrected": np.where(answered, (done - intended) / 1e9, np.nan),
            "ttft": np.where((first > 0) & (sent > 0), (first - sent) / 1e9, np.nan),
            "replies": ints("replies"),
            "bytes_out": ints("bytes_out"),
            "bytes_in": ints("bytes_in"),
            "error": np.array([r.error for r in records], dtype=object),
        }

    def _connection_columns(self) -> Columns:
        records = self.connections
        t0 = self.t0_ns

        def ints(name: str) -> npt.NDArray[np.int64]:
            return np.fromiter(map(attrgetter(name), records), np.int64, len(records))

        started, connected = ints("started_ns"), ints("connected_ns")
        return {
            "connection": ints("connection"),
            "connect_started_at": _seconds(started, t0),
            "connected_at": _seconds(connected, t0),
            "connect_latency": np.where(connected > 0, (connected - started) / 1e9, np.nan),
            "closed_at": _seconds(ints("closed_ns"), t0),
            "close_code": np.array([r.close_code for r in records], dtype=object),
            "close_reason": np.array([r.close_reason for r in records], dtype=object),
            "error": np.array([r.error for r in records], dtype=object),
        }


def lost_part(part: PlanPart, started_at: float, reason: str) -> PartialResult:
    """The rows of a part whose worker was lost, all with the error WORKER_LOST.

    Every connection of the part gets a row (``close_reason`` says why), and so does
    every message it was to send where the plan fixes their number (a ``messages``
    count, or the open model's timetable); a closed model bounded by ``duration``
    leaves no message rows. What the worker measured before it was lost is gone.
    """
    recorder = Recorder(lambda: 0, started_at, 0)
    for index in part.connections:
        record = recorder.connection(index)
        record.error, record.close_reason = LocalError.WORKER_LOST, reason
    plan = part.plan
    if plan.rate is not None:
        planned = [(-1, slot) for slot in part.slots]
    elif plan.duration is None:
        planned = [(c, i) for c in part.connections for i in range(plan.messages)]
    else:
        planned = []
    for connection, seq in planned:
        recorder.not_sent(connection, seq, error=LocalError.WORKER_LOST)
    return recorder.to_part(part.index)


def _seconds(ns: npt.NDArray[np.int64], t0: int) -> npt.NDArray[np.float64]:
    """Nanosecond clock readings as seconds since ``t0``; 0 ("never") becomes NaN."""
    return np.where(ns > 0, (ns - t0) / 1e9, np.nan)


def new_histogram() -> HdrHistogram:
    """An empty latency histogram (microseconds, 1 µs to one day, 3 digits)."""
    return HdrHistogram(HISTOGRAM_LOWEST_US, HISTOGRAM_HIGHEST_US, HISTOGRAM_DIGITS)


def histogram_of(seconds: npt.NDArray[np.float64]) -> HdrHistogram:
    """The histogram of finite latencies in seconds (recorded as whole microseconds)."""
    histogram = new_histogram()
    values = seconds[np.isfinite(seconds)]
    micros = np.clip(np.rint(values * 1e6), 0, HISTOGRAM_HIGHEST_US).astype(np.int64)
    for value, count in zip(*np.unique(micros, return_counts=True), strict=True):
        histogram.record_value(int(value), int(count))
    return histogram


def decode_histogram(encoded: bytes) -> HdrHistogram:
    """Rebuild a histogram from :meth:`HdrHistogram.encode` output."""
    histogram = new_histogram()
    histogram.decode_and_add(encoded)
    return histogram
