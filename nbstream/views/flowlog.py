"""What a FlowView shows, folded from flow events: the last N rows, counters and rates.

:meth:`FlowLog.fold` runs inline on the data path for every event, so it only
appends the event to a bounded deque and bumps counters. Everything costly (JSON
text, previews, clock strings, filtering) happens in :meth:`FlowLog.rows`, which a
view calls at most about ten times a second, and then only for events not yet seen.
Memory stays bounded whatever the rate: ``max_rows`` rows of at most ``MAX_JSON``
characters each (shared fairly between types, see :mod:`nbstream.views.keptrows`),
and at most ``max_types`` counters.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict, deque
from typing import Any, NamedTuple

from nbstream.events import FlowEvent
from nbstream.views.frames import INVALID as INVALID
from nbstream.views.frames import (
    MAX_DETAIL,
    PREVIEW,
    close_text,
    cut,
    frame_text,
    frame_type,
)
from nbstream.views.keptrows import KeptRows

MAX_JSON = MAX_DETAIL
"""Characters of a message's JSON kept for its detail view; longer ones are cut."""
OTHER = "other"
"""The counter that takes every type beyond ``max_types``."""
GAP_SESSIONS = 10_000
"""Sessions whose last row time is kept for the gap column (the least recent go)."""


class FlowRow(NamedTuple):
    """One line of the flow: a message, or a connection opening or closing."""

    seq: int
    at: float
    clock: str
    """``at`` as local time, like ``14:03:07.281``."""
    direction: str
    """``c2s``, ``s2c``, or ``""`` for ``open`` and ``close`` rows."""
    session_id: str
    user: str | None
    type: str
    size: int
    preview: str
    json: str
    """The detail: the frame's text (JSON, indented by :meth:`pretty`), a binary
    payload's hex and base64, or a connection event's facts."""
    gap: float | None = None
    """Seconds since the previous row of the same session (None for its first)."""

    def cells(self) -> list[Any]:
        """The row as the browser gets it: seq, clock, direction, session, type, size,
        preview, user, gap."""
        return [self.seq, self.clock, self.direction, self.session_id, self.type,
                self.size, self.preview, self.user, self.gap]

    def pretty(self) -> str:
        """The whole JSON, indented; as stored when it is not valid JSON (or was cut)."""
        try:
            return json.dumps(json.loads(self.json), indent=2, ensure_ascii=False)
        except ValueError:
            return self.json


_second: tuple[int, str] = (-1, "")


def clock(at: float) -> str:
    """Local wall-clock time of ``at`` to the millisecond, like ``14:03:07.281``."""
    global _second
    whole = int(at)
    if whole != _second[0]:  # localtime() costs microseconds: once a second is enough
        _second = (whole, time.strftime("%H:%M:%S", time.localtime(whole)))
    return f"{_second[1]}.{int(at % 1 * 1000):03d}"


def make_row(seq: int, event: FlowEvent, gap: float | None = None) -> FlowRow:
    """Render one event into a row (called at flush time, never on the data path)."""
    detail = event.detail or {}
    when = clock(event.at)
    if event.kind == "fault":  # a fault proxy acted: a row between the messages it touched
        facts = {k: v for k, v in detail.items() if k != "fault" and v not in (None, "")}
        summary = " ".join([str(detail.get("fault", "")), *(f"{k}={v}" for k, v in facts.items())])
        return FlowRow(seq, event.at, when, event.direction or "", event.session_id,
                       event.user, "fault", int(detail.get("size", 0)), cut(summary, PREVIEW),
                       json.dumps(detail, default=str), gap)
    if event.direction is not None:
        frame = frame_text(event)
        return FlowRow(seq, event.at, when, event.direction, event.session_id, event.user,
                       frame.type, frame.size, frame.preview, frame.detail, gap)
    facts = {"user": event.user, **detail}
    if event.kind == "close":
        summary = close_text(detail.get("code"), detail.get("reason"))
    else:
        summary = " ".join(f"{k}={v}" for k, v in facts.items() if v not in (None, ""))
    return FlowRow(seq, event.at, when, "", event.session_id, event.user, event.kind, 0,
                   cut(summary, PREVIEW), json.dumps(facts, default=str), gap)


class FlowLog:
    """The folded state of a flow: bounded rows, counters per type, rates per direction.

    Feed it with :meth:`fold` (cheap, any thread); read it with :meth:`rows`,
    :meth:`rates` and :meth:`detail` from the view's loop.
    """

    def __init__(self, max_rows: int = 200, max_types: int = 32, window: float = 1.0) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self.max_rows = max_rows
        self.max_types = max_types
        self.window = window
        self.counts: dict[str, int] = {}
        """Messages seen per type, since the log was created."""
        self.c2s = 0
        """Messages seen from client to server."""
        self.s2c = 0
        """Messages seen from server to client."""
        self._incoming: deque[FlowEvent] = deque(maxlen=max_rows)
        self._missed = 0
        self._rows: KeptRows[FlowRow] = KeptRows(max_rows)
        self._seq = 0
        self._last_at: OrderedDict[str, float] = OrderedDict()
        self._samples: deque[tuple[float, int, int]] = deque()

    def fold(self, event: FlowEvent) -> bool:
        """Take one event in; returns False for events that do not show (heartbeats)."""
        if event.kind == "heartbeat":
            return False
        incoming = self._incoming
        if len(incoming) == self.max_rows:  # the oldest event not yet a row falls out
            self._missed += 1
        incoming.append(event)
        direction = event.direction
        if direction is not None and event.kind != "fault":
            key = frame_type(event)
            counts = self.counts
            if key in counts:
                counts[key] += 1
            elif len(counts) < self.max_types:
                counts[key] = 1
            else:
                counts[OTHER] = counts.get(OTHER, 0) + 1
            if direction == "c2s":
                self.c2s += 1
            else:
                self.s2c += 1
        return True

    @property
    def total(self) -> int:
        """Messages seen in both directions."""
        return self.c2s + self.s2c

    @property
    def kept(self) -> int:
        """Rows kept now (at most ``max_rows``)."""
        self._take_incoming()
        return len(self._rows)

    @property
    def dropped(self) -> int:
        """Rows dropped to keep at most ``max_rows``: the oldest of the most frequent types."""
        self._take_incoming()
        return self._rows.dropped + self._missed

    def _take_incoming(self) -> None:
        incoming = self._incoming
        while incoming:
            self._seq += 1
            event = incoming.popleft()
            self._rows.add(make_row(self._seq, event, self._gap(event)))

    def _gap(self, event: FlowEvent) -> float | None:
        """Seconds since the previous row of ``event``'s session (faults have none)."""
        if event.kind == "fault":
            return None
        last_at = self._last_at
        previous = last_at.pop(event.session_id, None)
        last_at[event.session_id] = event.at
        if len(last_at) > GAP_SESSIONS:
            last_at.popitem(last=False)
        return None if previous is None else max(0.0, event.at - previous)

    def rows(self, type: str = "", session: str = "", text: str = "") -> list[FlowRow]:
        """The kept rows, oldest first, that match every filter given.

        Rows are kept fairly: when more than ``max_rows`` have come, the oldest row of
        the type that holds the most rows goes, so rare types stay in view.

        Args:
            type: Keep only this message type (or ``open``, ``close``, ``invalid``).
            session: Keep only sessions whose id contains this.
            text: Keep only rows whose JSON contains this, ignoring case.
        """
        self._take_incoming()
        needle = text.lower()
        return [
            row for row in (self._rows.of_type(type) if type else self._rows)
            if (not session or session in row.session_id)
            and (not needle or needle in row.json.lower())
        ]

    def sessions(self) -> list[str]:
        """Session ids present in the kept rows, in order of first appearance."""
        return list(self.session_users())

    def session_users(self) -> dict[str, str | None]:
        """The user of each session in the kept rows (None if unknown), oldest first."""
        self._take_incoming()
        users: dict[str, str | None] = {}
        for row in self._rows:
            if users.get(row.session_id) is None:
                users[row.session_id] = row.user
        return users

    def rates(self, now: float) -> tuple[float, float]:
        """Messages per second (client to server, server to client) over the last window."""
        samples = self._samples
        samples.append((now, self.c2s, self.s2c))
        while len(samples) > 2 and now - samples[1][0] >= self.window:
            samples.popleft()
        since, c2s, s2c = samples[0]
        elapsed = now - since
        if elapsed <= 0:
            return 0.0, 0.0
        return (self.c2s - c2s) / elapsed, (self.s2c - s2c) / elapsed
