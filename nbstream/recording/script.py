"""What replaying a session means, worked out from its frames: which frames the
client sends again, when, and how many replies came before and after each.

Pure (no sockets, no clock): :mod:`nbstream.recording.replayer` and
:mod:`nbstream.recording.scenario` drive the scripts made here.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from nbstream.recording.frames import Frame, SessionInfo
from nbstream.redact import REDACTED


class Send(msgspec.Struct, frozen=True):
    """One frame the client sent, to be sent again."""

    offset: float
    """Seconds after the script's origin (the first session's start) it was sent."""
    payload: str | bytes
    type: str | None
    think: float
    """Seconds since the session's previous frame (either way): the user's think time."""
    replies_before: int
    """Data frames the server had sent in this session before this one."""
    replies_after: int
    """Data frames the server sent between this one and the next send (or the end)."""


class SessionScript(msgspec.Struct, frozen=True):
    """The sends of one recorded session."""

    session: str
    opened: float
    """Seconds after the origin the connection opened (or its first frame)."""
    sends: list[Send]
    replies: int
    """Data frames the server sent in the whole session."""
    skipped: int
    """Client frames not sent again: their secrets were redacted when saved."""


def heartbeat_types(protocol: str) -> frozenset[str]:
    """The message types of ``protocol``'s in-band heartbeat (nbstream: ping and pong).

    They keep a connection alive; they are not the conversation: a replay answers the
    new server's pings itself, and neither sends the recorded ones again nor waits for
    them, and a diff leaves them out.
    """
    return _HEARTBEATS if protocol == "nbstream" else frozenset()


_HEARTBEATS = frozenset({"ping", "pong"})


def conversation(frame: Frame, heartbeat: frozenset[str]) -> bool:
    """Whether ``frame`` is a data frame of a session's conversation (not a heartbeat)."""
    return frame.is_data and frame.direction is not None and frame.type not in heartbeat


def scripts(frames: Sequence[Frame], sessions: Sequence[SessionInfo], protocol: str
            ) -> list[SessionScript]:
    """One script per session that has frames or opened, in the order of ``sessions``;
    ``protocol`` is the recording's (its heartbeat frames are left out)."""
    heartbeat = heartbeat_types(protocol)
    by_session: dict[str, list[Frame]] = {s.session: [] for s in sessions}
    for frame in frames:
        if conversation(frame, heartbeat):
            by_session.setdefault(frame.session, []).append(frame)
    starts = {name: _opened(name, own, sessions) for name, own in by_session.items()}
    known = [t for t in starts.values() if t is not None]
    if not known:
        return []
    origin = min(known)
    return [_script(name, sorted(own, key=lambda f: f.at), start - origin, origin)
            for name, own in by_session.items()
            if (start := starts[name]) is not None]


def _opened(name: str, own: list[Frame], sessions: Sequence[SessionInfo]) -> float | None:
    info = next((s for s in sessions if s.session == name), None)
    first = min((f.at for f in own), default=None)
    if info is not None and info.opened is not None:
        return info.opened if first is None else min(info.opened, first)
    return first


def _script(name: str, own: list[Frame], opened: float, origin: float) -> SessionScript:
    sends: list[Send] = []
    replies, skipped = 0, 0
    previous = origin + opened
    for frame in own:
        if frame.direction == "s2c":
            replies += 1
            if sends:
                sends[-1] = msgspec.structs.replace(sends[-1],
                                                    replies_after=sends[-1].replies_after + 1)
        elif isinstance(frame.payload, str) and REDACTED in frame.payload:
            skipped += 1
        elif frame.payload is not None:
            sends.append(Send(frame.at - origin, frame.payload, frame.type,
                              max(0.0, frame.at - previous), replies, 0))
        previous = frame.at
    return SessionScript(name, opened, sends, replies, skipped)
