"""What a load test records: one row per message and per connection, and HDR histograms.

The runner only writes integer timestamps from an injected clock (``perf_counter_ns``)
into :class:`MessageRecord` / :class:`ConnectionRecord` (and a scenario's
:class:`IterationRecord`) objects and bumps a few counters. Everything derived (live
:class:`Tick` figures here; typed columns and histograms in
:mod:`nbstream.loadtest.columns`) is computed from those records, off the data path.
No I/O.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

import msgspec

from nbstream.loadtest.columns import Checks, Columns, PartialResult, to_part
from nbstream.loadtest.histograms import (
    HISTOGRAMS,
    decode_histogram,
    histogram_of,
    new_histogram,
)

Clock = Callable[[], int]
"""A monotonic clock in integer nanoseconds; ``time.perf_counter_ns`` unless injected."""


class LocalError(enum.StrEnum):
    """Error codes the load tester assigns itself (server codes are kept as sent)."""

    NOT_SENT = "NOT_SENT"
    """The message (or scenario iteration) was planned but its connection failed or
    closed before sending (running) it."""
    TIMEOUT = "TIMEOUT"
    """No final reply within ``timeout``; the connection is then closed (later replies
    could not be told apart) and its remaining messages are NOT_SENT."""
    CANCELLED = "CANCELLED"
    """The test was cancelled while the message was in flight."""
    CONNECTION_REFUSED = "CONNECTION_REFUSED"
    CONNECT_TIMEOUT = "CONNECT_TIMEOUT"
    CONNECT_FAILED = "CONNECT_FAILED"
    """Any other network error while connecting (DNS, reset, too many open files)."""
    HANDSHAKE_FAILED = "HANDSHAKE_FAILED"
    """The peer is not a WebSocket server, or the handshake broke off."""


def http_error(status: int) -> str:
    """The code of a handshake refused with HTTP ``status``: ``HTTP_503``."""
    return f"HTTP_{status}"


def closed_error(code: int | None) -> str:
    """The code of a connection the peer closed too early: ``CLOSED_1011``.

    1006 means the TCP connection ended without a close frame.
    """
    return f"CLOSED_{1006 if code is None else code}"


class MessageRecord(msgspec.Struct, gc=False):
    """One message as the runner saw it; nanosecond timestamps, 0 meaning "never".

    A C struct the garbage collector never visits (it holds no references that could
    form cycles): a test keeps millions of them, and visiting each at every full
    collection would cost the generator more than building it.
    """

    connection: int
    seq: int
    intended_ns: int
    sent_ns: int
    bytes_out: int
    step: str | None = None
    """The scenario step it timed (None in the built-in flow)."""
    first_ns: int = 0
    done_ns: int = 0
    replies: int = 0
    bytes_in: int = 0
    error: str | None = None
    answered: bool = False
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
    step: str | None
    """The scenario step it timed (``user.request(name=)``, ``user.step()``,
    ``user.record()``); <NA> in the built-in flow."""


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


class IterationRecord(msgspec.Struct, gc=False):
    """One iteration of a scenario's user flow; nanosecond timestamps, 0 meaning "never"."""

    connection: int
    iteration: int
    intended_ns: int
    started_ns: int
    done_ns: int = 0
    think_ns: int = 0
    """Time spent in ``user.sleep`` (think time)."""
    error: str | None = None


class IterationRow(TypedDict):
    """The columns of ``LoadResult.iterations`` (times in seconds since the start)."""

    connection: int
    iteration: int
    """Per user in the closed model, the timetable's number in the open model."""
    intended_at: float
    """When the plan wanted it started; equals ``started_at`` in the closed model."""
    started_at: float
    done_at: float
    duration: float
    """``done_at - started_at``, think time included."""
    think_time: float
    """Seconds spent in ``user.sleep``."""
    error: str | None
    """<NA> when the flow returned, else the code of what ended it."""


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
        self.iterations: list[IterationRecord] = []
        self.checks: dict[str, list[int]] = {}
        """Scenario checks by name: [passes, fails]."""
        self.finished: list[MessageRecord] = []
        """Messages whose outcome is known, in the order it became known."""
        self.transport = "websockets"
        """The library that drove the connections (set by the runner)."""
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
                bytes_out: int, step: str | None = None) -> MessageRecord:
        """A new record for a message being sent now, kept and counted as sent."""
        record = MessageRecord(connection, seq, intended_ns, sent_ns, bytes_out, step)
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

    def not_sent(self, connection: int, seq: int, intended_ns: int = 0) -> None:
        """Keep a planned message that was never sent, as a NOT_SENT row."""
        record = MessageRecord(connection, seq, intended_ns, 0, 0)
        record.error = LocalError.NOT_SENT
        self.messages.append(record)
        self.finished.append(record)
        self.errors += 1

    def interval(self, connection: int, seq: int, step: str, intended_ns: int,
                 started_ns: int, now: int, error: str | None = None) -> MessageRecord:
        """Keep a timed step that sent nothing itself (``user.step()``, ``user.record()``)."""
        record = self.message(connection, seq, intended_ns, started_ns, 0, step)
        self.finish(record, now, error)
        return record

    def iteration(self, connection: int, iteration: int, intended_ns: int,
                  started_ns: int) -> IterationRecord:
        """A new record for a scenario iteration starting now, kept."""
        record = IterationRecord(connection, iteration, intended_ns, started_ns)
        self.iterations.append(record)
        return record

    def check(self, name: str, ok: bool) -> None:
        """Count one scenario check."""
        counts = self.checks.get(name)
        if counts is None:
            counts = self.checks[name] = [0, 0]
        counts[0 if ok else 1] += 1

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
        checks: Checks = {name: (p, f) for name, (p, f) in self.checks.items()}
        return to_part(index, self.started_at, self.t0_ns, self.messages, self.connections,
                       self.iterations, checks, self.transport)


__all__ = [
    "HISTOGRAMS",
    "Clock",
    "Columns",
    "ConnectionRecord",
    "ConnectionRow",
    "IterationRecord",
    "IterationRow",
    "LocalError",
    "MessageRecord",
    "MessageRow",
    "PartialResult",
    "Recorder",
    "Tick",
    "closed_error",
    "decode_histogram",
    "histogram_of",
    "http_error",
    "new_histogram",
]
