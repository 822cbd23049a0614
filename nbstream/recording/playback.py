"""A finished recording played again as flow events, for views: no server, no sockets.

:func:`flow_events` turns frames back into the :class:`~nbstream.events.FlowEvent`
a server would have published (``in`` for client frames, ``out`` for the server's,
``open`` and ``close`` per session). :class:`Playback` is the clock-free core of a
play button and a time scrubber: it says which events are due when the position
moves, by a seek or by time passing at some speed; a view's timer drives it.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from nbstream.events import CLOSE, FlowEvent
from nbstream.protocol import Message, StreamError
from nbstream.wire import WireProtocol
from nbstream.wire import create as create_protocol

if TYPE_CHECKING:
    from nbstream.recording.recorder import Recorder


def flow_events(recorder: Recorder) -> list[FlowEvent]:
    """The frames of ``recorder`` as flow events seen from the server, in time order."""
    protocol = create_protocol(recorder.protocol)
    events = [FlowEvent("open", "server", s.session, user=s.user, at=s.opened)
              for s in recorder.info.values() if s.opened is not None]
    users = {s.session: s.user for s in recorder.info.values()}
    for frame in recorder.frames:
        user = users.get(frame.session)
        if frame.opcode == CLOSE:
            events.append(FlowEvent("close", "server", frame.session, user=user, at=frame.at,
                                    detail={"code": frame.close_code,
                                            "reason": frame.payload or ""}))
            continue
        if frame.direction is None:
            continue
        events.append(FlowEvent(
            "in" if frame.direction == "c2s" else "out", "server", frame.session,
            direction=frame.direction, message=_message(protocol, frame.payload),
            size=frame.size, user=user, at=frame.at, opcode=frame.opcode,
            payload=frame.payload))
    events.sort(key=lambda e: e.at)
    return events


def _message(protocol: WireProtocol, payload: str | bytes | None) -> Message | None:
    if payload is None:
        return None
    try:
        return protocol.decode_replies(payload)[0]
    except StreamError:  # a frame its protocol cannot read shows as invalid, as it did live
        return None


class Playback:
    """Where a replay of events stands: a position in seconds from the first event.

    Call :meth:`seek` when the scrubber moves (fold what it returns into a fresh
    view state) and :meth:`advance` on each tick while playing (fold what it returns
    on top).
    """

    def __init__(self, events: list[FlowEvent], speed: float = 1.0) -> None:
        self.events = events
        self.origin = events[0].at if events else 0.0
        self._offsets = [e.at - self.origin for e in events]
        self.duration = self._offsets[-1] if events else 0.0
        """Seconds from the first event to the last."""
        self.position = self.duration
        """Seconds from the first event; everything up to here has been shown."""
        self.speed = speed

    def _index(self, position: float) -> int:
        return bisect.bisect_right(self._offsets, position)

    def seek(self, position: float) -> list[FlowEvent]:
        """Move to ``position`` (clamped to the recording); the events up to it."""
        self.position = min(max(position, 0.0), self.duration)
        return self.events[:self._index(self.position)]

    def advance(self, seconds: float) -> list[FlowEvent]:
        """``seconds`` of wall-clock time passed while playing: the events now due."""
        start = self._index(self.position)
        self.position = min(self.position + seconds * self.speed, self.duration)
        return self.events[start:self._index(self.position)]

    @property
    def finished(self) -> bool:
        """True once the last event has been shown."""
        return self.position >= self.duration
