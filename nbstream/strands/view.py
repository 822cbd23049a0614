"""TurnView: a live transcript timeline of a Strands agent's conversation, turn by turn.

``TurnView(server_or_client)`` shows, for one session at a time, each turn: what the
user said (or how much audio they sent), the tools called with their results, what
the assistant said (transcript and text), the audio chunks as a bar of their sizes,
and barge-ins. It folds the source's flow events into a
:class:`~nbstream.strands.turns.TurnLog` and refreshes the browser at most about ten
times a second, like the other views.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import msgspec
import traitlets as t

from nbstream import runtime
from nbstream.events import FlowEvent
from nbstream.strands.turns import TurnLog, TurnRecord
from nbstream.views.flow import EventSource
from nbstream.views.throttle import DEFAULT_INTERVAL, Throttle

_HERE = Path(__file__).parent


class TurnView(anywidget.AnyWidget):
    """Live turns of a Strands agent's sessions on a ``Server`` or a ``Client``.

    Display it as a cell's last expression. It follows the most recently active
    session; pick another in its menu (or set :attr:`session`). Call :meth:`close`
    when done: it stops listening.

    Args:
        source: What to watch; anything with an ``events`` stream.
        shown: Turns shown (the latest ones).
        max_turns: Turns kept per session.
        interval: Seconds between pushes to the browser, at least.
        title: Heading; defaults to the source's class and URL.
    """

    _esm = _HERE / "turn.js"
    _css = _HERE / "turn.css"

    title = t.Unicode("").tag(sync=True)
    turns_json = t.Unicode("[]").tag(sync=True)
    """The shown turns as one JSON array of :meth:`TurnRecord.to_json` objects."""
    sessions: t.List[str] = t.List().tag(sync=True)
    session = t.Unicode("").tag(sync=True)
    """The session shown; empty follows the most recently active one."""
    total_turns = t.Int(0).tag(sync=True)
    """Turns seen in the shown session."""

    def __init__(self, source: EventSource, *, shown: int = 12, max_turns: int = 50,
                 interval: float = DEFAULT_INTERVAL, title: str | None = None,
                 **kwargs: Any) -> None:
        self.turn_log = TurnLog(max_turns=max_turns)
        """The folded state behind the view."""
        self.shown = shown
        self._unsubscribe: Callable[[], None] = lambda: None
        self._throttle = Throttle(runtime.home_loop(), self._flush, interval)
        url = getattr(source, "url", "")
        super().__init__(title=title if title is not None else
                         f"Turns of {type(source).__name__} {url}".strip(), **kwargs)
        self._unsubscribe = source.events.subscribe(self._on_event)
        self.observe(lambda _: self._throttle.poke(), names=["session"])

    @property
    def turns(self) -> list[TurnRecord]:
        """The turns of the shown session, oldest first (all those kept)."""
        return self.turn_log.turns(self.session or None)

    @property
    def pushes(self) -> int:
        """How many times the view refreshed the browser."""
        return self._throttle.flushes

    def _on_event(self, event: FlowEvent) -> None:
        if self.turn_log.fold(event):
            self._throttle.poke()

    def _flush(self) -> None:
        turns = self.turns
        shown = msgspec.json.encode([turn.to_json() for turn in turns[-self.shown:]]).decode()
        with self.hold_sync():
            self.sessions = self.turn_log.sessions()
            self.total_turns = turns[-1].index if turns else 0
            if shown != self.turns_json:
                self.turns_json = shown

    def close(self) -> None:
        """Stop listening and remove the view. Safe to call twice."""
        if hasattr(self, "_throttle"):  # not there when __init__ failed early
            self._unsubscribe()
            self._throttle.close()
        super().close()

    def __repr__(self) -> str:
        return f"<nbstream.strands.TurnView {self.title!r}: {len(self.turns)} turns>"
