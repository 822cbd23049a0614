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
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from nbstream.protocol import Message

logger = logging.getLogger(__name__)

EventKind = Literal["open", "close", "in", "out", "heartbeat"]
Direction = Literal["c2s", "s2c"]


class FlowEvent(msgspec.Struct, frozen=True):
    """Something that happened on one connection, seen from ``source``.

    ``kind`` is ``open``, ``close``, ``in`` (received), ``out`` (sent) or
    ``heartbeat`` (a round trip measured, in ``detail["rtt"]``). ``direction`` tells
    which way a message travelled: ``c2s`` (client to server) or ``s2c``.
    """

    kind: EventKind
    source: Literal["server", "client"]
    session_id: str
    direction: Direction | None = None
    message: Message | None = None
    size: int = 0
    user: str | None = None
    at: float = 0.0
    """Wall-clock time (``time.time()``) when the event happened."""
    detail: dict[str, Any] | None = None


Subscriber = Callable[[FlowEvent], None]


class EventStream:
    """Fan-out of :class:`FlowEvent` to subscribers; falsy while nobody listens."""

    def __init__(self) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Start calling ``subscriber(event)``; returns the function that stops it."""
        self._subscribers = (*self._subscribers, subscriber)

        def unsubscribe() -> None:
            self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)

        return unsubscribe

    def publish(self, event: FlowEvent) -> None:
        """Hand ``event`` to every subscriber; a failing subscriber is logged, not raised."""
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                logger.exception("event subscriber %r failed; it stays subscribed", subscriber)

    def emit(self, kind: EventKind, source: Literal["server", "client"], session_id: str,
             **fields: Any) -> None:
        """Build and publish an event stamped now; callers check ``if stream:`` first."""
        self.publish(FlowEvent(kind, source, session_id, at=time.time(), **fields))

    def __bool__(self) -> bool:
        return bool(self._subscribers)

    def __len__(self) -> int:
        return len(self._subscribers)
