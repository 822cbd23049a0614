"""FlowView: a live inspector of the messages in both directions, like devtools' frames.

``nbstream.FlowView(server)`` (or a client, or a running load test) shows one row
per message: time, direction, session, type, size and a preview; click a row for
its whole JSON. It subscribes to ``source.events``, folds each event into a
:class:`~nbstream.views.flowlog.FlowLog` and pushes to the browser at most about
ten times a second, so it never slows the stream it watches by much.

On a recording it shows what was recorded, then follows a live one; a finished one
gets a play button and a time scrubber (:mod:`nbstream.views.playing`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import anywidget
import msgspec
import traitlets as t

from nbstream import runtime
from nbstream.events import EventStream, FlowEvent
from nbstream.recording import Recording
from nbstream.recording.playback import Playback
from nbstream.views.flowlog import FlowLog, FlowRow
from nbstream.views.playing import PlaybackDriver
from nbstream.views.throttle import DEFAULT_INTERVAL, Throttle

_HERE = Path(__file__).parent
RATE_REFRESH = 0.25
"""Seconds between refreshes while the rates decay after traffic stops."""


def _nothing() -> None:
    """What closing does before the view subscribed."""


class EventSource(Protocol):
    """Anything that publishes flow events: a Server, a Client, a LoadTest."""

    @property
    def events(self) -> EventStream: ...


class FlowView(anywidget.AnyWidget):
    """Live message inspector for a ``Server``, a ``Client``, a running ``LoadTest`` or
    a ``Recording``.

    Display it as a cell's last expression. Filter by type, session or text, pause
    to read, click a row to see its JSON. The lane picture on the right draws the
    last messages as arrows between clients and server when at most four sessions
    are in view. On a finished recording, **play** draws the flow again at ``speed``
    and the scrubber jumps to any moment (``view.seek(seconds)``, ``view.playing =
    True`` from code). Call :meth:`close` when done: it stops listening.

    Args:
        source: What to watch; anything with an ``events`` stream.
        max_rows: Rows kept (and shown). Beyond it the oldest row of the most frequent
            type goes, so rare types (a ``content`` among heartbeats) stay in view.
        interval: Seconds between pushes to the browser, at least.
        title: Heading; defaults to the source's class and URL.
    """

    _esm = _HERE / "flow.js"
    _css = _HERE / "flow.css"

    title = t.Unicode("").tag(sync=True)
    rows_json = t.Unicode("[]").tag(sync=True)
    """The shown rows as one JSON array of :meth:`FlowRow.cells` lists. One string, so
    that ipywidgets need not walk hundreds of nested lists at every refresh."""
    total = t.Int(0).tag(sync=True)
    counts = t.Dict().tag(sync=True)
    rates = t.List([0.0, 0.0]).tag(sync=True)
    """Messages per second, client to server and server to client."""
    sessions: t.List[str] = t.List().tag(sync=True)
    session_users = t.Dict().tag(sync=True)
    """The user of each session id in ``sessions`` (None when unknown): the names shown."""
    kept = t.Int(0).tag(sync=True)
    """Rows kept, whatever the filters (at most ``max_rows``)."""
    dropped = t.Int(0).tag(sync=True)
    """Rows no longer kept: the oldest rows of the most frequent types."""
    type_filter = t.Unicode("").tag(sync=True)
    session_filter = t.Unicode("").tag(sync=True)
    text_filter = t.Unicode("").tag(sync=True)
    paused = t.Bool(False).tag(sync=True)
    """While True the rows stay still (counters go on); set False to catch up."""
    follow = t.Bool(True).tag(sync=True)
    """Keep the newest row in sight (browser side)."""
    selected = t.Int(-1).tag(sync=True)
    """Sequence number of the clicked row, -1 for none."""
    detail = t.Unicode("").tag(sync=True)
    """The whole JSON of the selected row."""
    duration = t.Float(0.0).tag(sync=True)
    """Seconds a finished recording lasts (0: a live source, no play controls)."""
    position = t.Float(0.0).tag(sync=True)
    """Seconds into the recording shown so far (a finished recording)."""
    playing = t.Bool(False).tag(sync=True)
    """True while a finished recording plays; set it to play or pause."""
    speed = t.Float(1.0).tag(sync=True)
    """How much faster than recorded it plays."""
    seek_to = t.Float(-1.0).tag(sync=True)
    """Where the scrubber asks to go (seconds); -1 once done."""

    def __init__(self, source: EventSource, *, max_rows: int = 200,
                 interval: float = DEFAULT_INTERVAL, title: str | None = None,
                 **kwargs: Any) -> None:
        self.flow_log = FlowLog(max_rows)
        """The folded state behind the view (counters, rows)."""
        self._shown: list[FlowRow] = []
        self._unsubscribe: Callable[[], None] = _nothing
        self._throttle = Throttle(runtime.home_loop(), self._flush, interval)
        self._driver: PlaybackDriver | None = None
        url = getattr(source, "url", "") or getattr(source, "source", "")
        super().__init__(title=title if title is not None else
                         f"{type(source).__name__} {url}".strip(), **kwargs)
        self.observe(self._on_choice,
                     names=["type_filter", "session_filter", "text_filter", "paused"])
        self.observe(self._on_select, names=["selected"])
        if isinstance(source, Recording):
            self._show_recording(source)
        if self._driver is None:
            self._unsubscribe = source.events.subscribe(self._on_event)

    def _show_recording(self, recording: Recording) -> None:
        """What was recorded so far; a finished recording gets a scrubber and play."""
        events = recording.flow_events()
        if recording.live:
            self._fold(events)
            return
        playback = Playback(events, self.speed)
        self._driver = PlaybackDriver(playback, self._throttle.loop, self._restart, self._fold,
                                      self._finished)
        self.duration = self.position = playback.duration
        self._fold(events)
        self.observe(self._on_seek, names=["seek_to"])
        self.observe(self._on_play, names=["playing"])
        self.observe(self._on_speed, names=["speed"])

    def seek(self, seconds: float) -> None:
        """Show a finished recording as it stood ``seconds`` in (the scrubber's job)."""
        if self._driver is not None:
            self._driver.seek(seconds)

    def _fold(self, events: list[FlowEvent]) -> None:
        shown = False
        for event in events:
            shown = self.flow_log.fold(event) or shown
        if shown:
            self._throttle.poke()

    def _restart(self) -> None:
        self.flow_log = FlowLog(self.flow_log.max_rows)
        self._throttle.poke()

    def _finished(self) -> None:
        self.playing = False

    def _on_seek(self, change: Any) -> None:
        if change["new"] >= 0:
            self.seek(change["new"])
            self.seek_to = -1.0

    def _on_play(self, change: Any) -> None:
        assert self._driver is not None
        if change["new"]:
            self._driver.play()
        else:
            self._driver.pause()

    def _on_speed(self, change: Any) -> None:
        assert self._driver is not None
        if change["new"] > 0:
            self._driver.playback.speed = change["new"]

    @property
    def rows(self) -> list[list[Any]]:
        """The rows the browser shows (see :meth:`FlowRow.cells`), at most ``max_rows``."""
        return [row.cells() for row in self._shown]

    @property
    def pushes(self) -> int:
        """How many times the view refreshed the browser."""
        return self._throttle.flushes

    def _on_event(self, event: FlowEvent) -> None:
        if self.flow_log.fold(event):
            self._throttle.poke()

    def _flush(self) -> float | None:
        log = self.flow_log
        c2s, s2c = log.rates(time.monotonic())
        with self.hold_sync():
            if self._driver is not None:
                self.position = self._driver.playback.position
            self.total = log.total
            self.counts = dict(log.counts)
            self.rates = [round(c2s, 1), round(s2c, 1)]
            if not self.paused:
                self._shown = log.rows(self.type_filter, self.session_filter, self.text_filter)
                self.rows_json = msgspec.json.encode(self.rows).decode()
                users = log.session_users()
                self.sessions = list(users)
                self.session_users = users
                self.kept = log.kept
                self.dropped = log.dropped
        return RATE_REFRESH if c2s or s2c else None

    def _on_choice(self, change: Any) -> None:
        self._throttle.poke()

    def _on_select(self, change: Any) -> None:
        row = next((r for r in self._shown if r.seq == change["new"]), None)
        self.detail = row.pretty() if row is not None else ""

    def close(self) -> None:
        """Stop listening and remove the view. Safe to call twice."""
        if hasattr(self, "_throttle"):  # not there when __init__ failed early
            self._unsubscribe()
            self._throttle.close()
            if self._driver is not None:
                self._driver.close()
        super().close()

    def __repr__(self) -> str:
        return f"<nbstream.FlowView {self.title!r}: {self.flow_log.total} messages>"
