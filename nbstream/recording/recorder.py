"""The live part of a recording: frames folded in from event streams as they happen.

A :class:`Recorder` subscribes to a server's, a client's or a fault proxy's
:class:`~nbstream.events.EventStream` and turns each event into a
:class:`~nbstream.recording.frames.Frame`; nothing sits on the data path. Subscribers
may run on another thread (a proxy's loop): appends are atomic, and the one
check-then-insert is locked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Self

import msgspec

from nbstream.events import EventStream, FlowEvent
from nbstream.protocol import SUBPROTOCOL
from nbstream.recording.frames import Frame, SessionInfo, TypeNamer, frame_of
from nbstream.wire import WireProtocol


class Recorder:
    """Frames of WebSocket sessions and what is known of each session; fills live
    from event streams (:meth:`attach`). :class:`~nbstream.recording.Recording` adds
    the views, files and replays."""

    def __init__(self, frames: Iterable[Frame] = (), sessions: Iterable[SessionInfo] = (),
                 *, start: float | None = None, protocol: str = "json", source: str = "",
                 meta: dict[str, Any] | None = None) -> None:
        self._frames: list[Frame] = list(frames)
        self.info: dict[str, SessionInfo] = {s.session: s for s in sessions}
        """Each session's URL, subprotocol, user, open and close, by session name."""
        self.start = start if start is not None else (
            min((f.at for f in self._frames), default=None) or time.time())
        """Wall-clock time (epoch seconds) the recording started; ``time`` counts from it."""
        self.protocol = protocol
        """How payloads name their type: ``nbstream``, ``json``, ``text`` or ``raw``."""
        self.source = source
        """What was recorded, e.g. ``server ws://127.0.0.1:8765/ws`` or a HAR file's name."""
        self.meta: dict[str, Any] = dict(meta or {})
        """Anything else worth keeping: a replay's ``timing`` and ``speed``..."""
        self.problems: list[str] = []
        """What a lenient load (``strict=False``) skipped, one line each."""
        self.events = EventStream()
        """The recorded events as they arrive (live recordings), under the recording's
        session names, for views."""
        self._stops: list[Callable[[], None]] = []
        self._opens: dict[str, FlowEvent] = {}
        """Open events of sessions that have no frame yet."""
        self._lock = threading.Lock()

    # -- recording live ----------------------------------------------------------------------

    def attach(self, events: EventStream, *, url: str | None = None,
               protocol: WireProtocol | None = None, session: str | None = None,
               default_session: str = "session", namer: TypeNamer | None = None) -> None:
        """Record every frame published on ``events`` from now on (see :func:`record`).

        Args:
            url: The URL to note for sessions that open.
            protocol: The source's wire protocol (encodes messages seen without payload).
            session: Record every event under this session name.
            default_session: The name for events whose session id is empty.
            namer: Name types from payloads instead of from the source's messages.
        """
        def on_event(event: FlowEvent) -> None:
            name = session or event.session_id or default_session
            frame = frame_of(event, name, protocol=protocol, namer=namer)
            self._note(event, name, frame, url)
            if frame is not None:
                self._frames.append(frame)
            if self.events and (frame is not None or event.kind == "open"):
                self.events.publish(event if event.session_id == name else
                                    msgspec.structs.replace(event, session_id=name))

        self._stops.append(events.subscribe(on_event))

    def _note(self, event: FlowEvent, name: str, frame: Frame | None, url: str | None) -> None:
        """Keep what ``event`` says about its session. A session is listed from its
        first frame on; an ``open`` before it is kept for its time and user."""
        info = self.info.get(name)
        if info is None:
            if frame is None:
                if event.kind == "open":
                    self._opens[name] = event
                return
            with self._lock:
                info = self.info.setdefault(name, SessionInfo(name, url=url))
            opened = self._opens.pop(name, None)
            if opened is not None:
                info.opened, info.user = opened.at, opened.user
        if event.kind == "open" and info.opened is None:
            info.opened = event.at
        if event.user is not None and info.user is None:
            info.user = event.user
        if frame is None:
            return
        if frame.close_code is not None or event.kind == "close":
            info.closed, info.close_code = frame.at, frame.close_code
            info.close_reason = frame.payload if isinstance(frame.payload, str) else None
        elif info.subprotocol is None and _nbstream_welcome(frame):
            info.subprotocol = SUBPROTOCOL  # nbstream welcomes clients that offer it

    def add(self, frame: Frame) -> None:
        """Append one frame (what a replay saw itself, such as its own close)."""
        info = self.info.setdefault(frame.session, SessionInfo(frame.session))
        if frame.close_code is not None:
            info.closed, info.close_code = frame.at, frame.close_code
        self._frames.append(frame)

    @property
    def live(self) -> bool:
        """True while the recording still listens to its source."""
        return bool(self._stops)

    def stop(self) -> Self:
        """Stop listening (frames recorded so far stay); safe twice. Returns the recording."""
        for unsubscribe in self._stops:
            unsubscribe()
        self._stops.clear()
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def frames(self) -> list[Frame]:
        """The frames so far, in the order they were seen (a copy)."""
        return list(self._frames)

    def __len__(self) -> int:
        return len(self._frames)


def _nbstream_welcome(frame: Frame) -> bool:
    """Whether ``frame`` is an nbstream server's welcome (sent to clients that offered
    the nbstream subprotocol)."""
    payload = frame.payload
    return frame.type == "welcome" and frame.direction == "s2c" and isinstance(payload, str) \
        and '"session_id"' in payload and '"epoch"' in payload
