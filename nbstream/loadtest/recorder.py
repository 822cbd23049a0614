"""What a load test records: one row per message and per connection, and HDR histograms.

The runner only writes integer timestamps from an injected clock (``perf_counter_ns``)
into :class:`MessageRecord` / :class:`ConnectionRecord` (and a scenario's
:class:`IterationRecord`) objects and bumps a few counters. Everything derived (live
:class:`Tick` figures here; typed columns and histograms in
:mod:`nbstream.loadtest.columns`) is computed from those records, off the data path.
No I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import filterfalse
from operator import attrgetter
from typing import TYPE_CHECKING, TypedDict

import msgspec

from nbstream.loadtest.columns import Checks, Columns, PartialResult, to_part
from nbstream.loadtest.errors import LocalError, closed_error, http_error
from nbstream.loadtest.histograms import (
    HISTOGRAMS,
    decode_histogram,
    histogram_of,
    new_histogram,
)

if TYPE_CHECKING:
    from nbstream.loadtest.plan import PlanPart

Clock = Callable[[], int]
"""A monotonic clock in integer nanoseconds; ``time.perf_counter_ns`` unless injected."""


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
    """Completion times of the messages that succeeded since the previous tick: all of
    them, or an even sample of fewer than twice TICK_SAMPLE (see ``weight``)."""
    latencies: list[float]
    """Their latencies, in seconds."""
    weight: float = 1.0
    """How many successes each one of ``done_at`` stands for (1.0: none was left out)."""


TICK_SAMPLE = 1_000
"""Above this many successes a tick reports a sample: live figures need no more, and
converting every message cost the generator 3% of its rate."""

_error_of = attrgetter("error")


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
        self.errors = 0
        """Messages that ended with an error, never-sent ones included."""
        self.connections_open = 0
        self._unsent = 0
        """Records of messages never sent (in both lists, counted in neither figure)."""
        self._ticked = 0

    # The data path only appends records to the two lists (no counter to bump): the
    # counts of sent and settled messages are their lengths.

    @property
    def sent(self) -> int:
        """Messages handed to a socket (and timed steps that sent nothing)."""
        return len(self.messages) - self._unsent

    @property
    def settled(self) -> int:
        """Sent messages whose outcome is known (so in flight = sent - settled)."""
        return len(self.finished) - self._unsent

    @property
    def completed(self) -> int:
        """Sent messages that succeeded."""
        return self.settled - (self.errors - self._unsent)

    # -- the runner's side ---------------------------------------------------------

    def connection(self, index: int) -> ConnectionRecord:
        """A new connection record, kept."""
        record = ConnectionRecord(index)
        self.connections.append(record)
        return record

    def message(self, connection: int, seq: int, intended_ns: int, sent_ns: int,
                bytes_out: int, step: str | None = None) -> MessageRecord:
        """A new record for a message being sent now, kept (so counted as sent)."""
        record = MessageRecord(connection, seq, intended_ns, sent_ns, bytes_out, step)
        self.messages.append(record)
        return record

    def finish(self, record: MessageRecord, now: int, error: str | None = None,
               answered: bool = True) -> None:
        """Settle a sent message: its reply completed it, or ``error`` ended it."""
        record.done_ns = now
        record.error = error
        record.answered = answered
        self.finished.append(record)
        if error is not None:
            self.errors += 1

    def not_sent(self, connection: int, seq: int, intended_ns: int = 0,
                 error: str = LocalError.NOT_SENT) -> None:
        """Keep a planned message that was never sent (or not known to be), as an error row."""
        record = MessageRecord(connection, seq, intended_ns, 0, 0)
        record.error = error
        self.messages.append(record)
        self.finished.append(record)
        self.errors += 1
        self._unsent += 1

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
        """Counters now, and the successes since the previous call, or an even sample
        of them (for live progress)."""
        t0, finished = self.t0_ns, self.finished
        # A success has no error code (codes are never empty): filtered in C.
        ok = list(filterfalse(_error_of, finished[self._ticked:]))
        self._ticked = len(finished)
        sample = ok[::max(1, len(ok) // TICK_SAMPLE)]
        return Tick(
            at=(self.clock() - t0) / 1e9,
            sent=self.sent,
            completed=self.completed,
            errors=self.errors,
            in_flight=self.sent - self.settled,
            connections_open=self.connections_open,
            done_at=[(r.done_ns - t0) / 1e9 for r in sample],
            latencies=[(r.done_ns - r.sent_ns) / 1e9 for r in sample],
            weight=len(ok) / len(sample) if sample else 1.0,
        )

    def to_part(self, index: int) -> PartialResult:
        """Typed columns and encoded histograms of everything recorded, for merging."""
        checks: Checks = {name: (p, f) for name, (p, f) in self.checks.items()}
        return to_part(index, self.started_at, self.t0_ns, self.messages, self.connections,
                       self.iterations, checks, self.transport)


def lost_part(part: PlanPart, started_at: float, reason: str) -> PartialResult:
    """The rows of a part whose worker was lost, all with the error WORKER_LOST.

    Every connection of the part gets a row (``close_reason`` says why), and so does
    every message (a scenario: every iteration) it was to send where the plan fixes
    their number (a ``messages`` or ``iterations`` count, or the open model's
    timetable); a closed model bounded by ``duration`` leaves none. What the worker
    measured before it was lost is gone.
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
        if plan.scenario is not None:
            recorder.iteration(connection, seq, 0, 0).error = LocalError.WORKER_LOST
        else:
            recorder.not_sent(connection, seq, error=LocalError.WORKER_LOST)
    return recorder.to_part(part.index)


__all__ = [
    "HISTOGRAMS",
    "TICK_SAMPLE",
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
    "lost_part",
    "new_histogram",
]
