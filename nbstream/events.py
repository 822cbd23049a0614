"""One stream of flow events that views, statistics and logs consume.

Servers and clients publish a :class:`FlowEvent` for every connection opened or
closed and every message in or out. Publishing costs one truth test when nobody
listens. Subscribers are plain callables run inline on the event loop: they must
only fold the event into their own state (append to a bounded deque, bump a
counter) and never block or send anything themselves.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from nbstream.protocol import Message

logger = logging.getLogger(__name__)

EventKind = Literal["open", "close", "in", "out", "heartbeat", "refused", "fault"]
Direction = Literal["c2s", "s2c"]
Source = Literal["server", "client", "proxy"]

TEXT, BINARY, CLOSE, PING, PONG = 1, 2, 8, 9, 10
"""WebSocket opcodes (RFC 6455 section 5.2), as :attr:`FlowEvent.opcode` carries them."""
CONTROL_TYPES = {PING: "ping", PONG: "pong", CLOSE: "close"}
"""The type a control frame's event shows as (it carries no message)."""


class FlowEvent(msgspec.Struct, frozen=True):
    """Something that happened on one connection, seen from ``source``.

    ``kind`` is ``open``, ``close``, ``in`` (received), ``out`` (sent),
    ``heartbeat`` (a round trip measured, in ``detail["rtt"]``), ``refused`` (a
    connection turned away before it opened; ``detail`` says why) or ``fault`` (a
    fault proxy changed the flow; ``detail`` says how). ``direction`` tells which way a
    message travelled: ``c2s`` (client to server) or ``s2c``.

    ``opcode`` and ``payload`` describe the WebSocket frame itself where the source
    knows it: the opcode (:data:`TEXT`, :data:`BINARY`, :data:`CLOSE`, :data:`PING`,
    :data:`PONG`) and the payload exactly as it went on the wire (``str`` for text,
    ``bytes`` otherwise). Recordings keep them; views fall back to ``message``.
    """

    kind: EventKind
    source: Source
    session_id: str
    direction: Direction | None = None
    message: Message | None = None
    size: int = 0
    user: str | None = None
    at: float = 0.0
    """Wall-clock time (``time.time()``) when the event happened."""
    detail: dict[str, Any] | None = None
    opcode: int | None = None
    payload: str | bytes | None = None


Subscriber = Callable[[FlowEvent], object]
"""Called with every event; what it returns is ignored (``TurnLog.fold`` fits as is)."""


class EventStream:
    """Fan-out of :class:`FlowEvent` to subscribers; falsy while nobody listens.

    With ``keep`` > 0 the stream also keeps its last ``keep`` events (and is then
    always truthy): :meth:`to_frame` gives them as a DataFrame.
    """

    def __init__(self, keep: int = 0) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()
        self.listened = False
        """Whether anyone listens: the stream's truthiness as a plain attribute, for a
        data path that checks it every message (no call)."""
        self._kept: deque[FlowEvent] | None = None
        self.keep(keep)

    def keep(self, count: int) -> None:
        """Keep the last ``count`` events from now on (0: keep none), for :meth:`to_frame`."""
        if count < 0:
            raise ValueError(f"keep({count}): must be 0 or more events")
        old = self._kept
        self._kept = deque(old or (), maxlen=count) if count else None
        others = tuple(s for s in self._subscribers if s != self._append)
        self._listen(others if self._kept is None else (self._append, *others))

    def _listen(self, subscribers: tuple[Subscriber, ...]) -> None:
        self._subscribers = subscribers
        self.listened = bool(subscribers)

    def _append(self, event: FlowEvent) -> None:
        assert self._kept is not None
        self._kept.append(event)

    def to_frame(self) -> Any:
        """The kept events as a pandas DataFrame, one row per frame or event.

        Columns: ``at`` (wall-clock seconds), ``kind``, ``direction``, ``session``,
        ``opcode``, ``type`` (the message's; ``ping``, ``pong`` or ``close`` for control
        frames), ``size``, ``payload`` (str for text, bytes otherwise), ``detail``.

        Raises:
            RuntimeError: when the stream keeps nothing (call ``keep(10_000)`` first).
        """
        if self._kept is None:
            raise RuntimeError("this event stream keeps no events: call "
                               ".events.keep(10_000) first, then look again")
        import pandas as pd

        rows = [{"at": e.at, "kind": e.kind, "direction": e.direction,
                 "session": e.session_id, "opcode": e.opcode,
                 "type": (e.message.type if e.message is not None
                          else CONTROL_TYPES.get(e.opcode or 0)),
                 "size": e.size, "payload": e.payload, "detail": e.detail}
                for e in list(self._kept)]
        columns = ["at", "kind", "direction", "session", "opcode", "type", "size",
                   "payload", "detail"]
        frame = pd.DataFrame(rows, columns=columns)
        frame["opcode"] = frame["opcode"].astype("Int64")  # a missing opcode stays missing
        return frame

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Start calling ``subscriber(event)``; returns the function that stops it."""
        self._listen((*self._subscribers, subscriber))

        def unsubscribe() -> None:
            self._listen(tuple(s for s in self._subscribers if s is not subscriber))

        return unsubscribe

    def publish(self, event: FlowEvent) -> None:
        """Hand ``event`` to every subscriber; a failing subscriber is logged, not raised."""
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                logger.exception("event subscriber %r failed; it stays subscribed", subscriber)

    def emit(self, kind: EventKind, source: Source, session_id: str,
             **fields: Any) -> None:
        """Build and publish an event stamped now; callers check ``if stream:`` first."""
        self.publish(FlowEvent(kind, source, session_id, at=time.time(), **fields))

    def __bool__(self) -> bool:
        return self.listened

    def __len__(self) -> int:
        """How many subscribers listen (the kept events count as one)."""
        return len(self._subscribers)
