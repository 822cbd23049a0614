"""Every session a server holds, attached or waiting for its client, and their bounds.

A session whose client dropped (a *detached* session) keeps its history for
``session_ttl`` seconds so that the client can resume it. Three bounds keep what
detached sessions hold finite whatever clients do: ``max_sessions`` (attached or
detached), ``max_sessions_per_user`` and ``max_detached_bytes`` (history bytes held
for detached sessions). Over a bound, the oldest detached sessions end first; a later
resume of one gets ``recovered: false``, as after its time ran out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from nbstream.backplane import Backplane
from nbstream.events import EventStream
from nbstream.handlers import ResolvedHandler
from nbstream.protocol import BoundedHistory, ErrorCode, Position, Session, StreamError
from nbstream.server.live import LiveSession
from nbstream.server.options import ServerOptions
from nbstream.wire import WireProtocol

logger = logging.getLogger(__name__)

Evicted = Callable[[str], None]
"""Called with the reason ("ttl", "sessions", "user", "bytes") for each session ended
to keep a bound."""


class SessionRegistry:
    """The sessions of one server, by id; :attr:`sessions` keeps creation order."""

    def __init__(self, options: ServerOptions, handler: ResolvedHandler,
                 protocol: WireProtocol, events: EventStream, backplane: Backplane,
                 on_evict: Evicted | None = None) -> None:
        self.options = options
        self.handler = handler
        self.protocol = protocol
        self.events = events
        self.backplane = backplane
        self.sessions: dict[str, LiveSession] = {}
        self._detached: dict[str, LiveSession] = {}
        """Sessions without a connection, oldest detach first."""
        self._on_evict = on_evict
        self.evicted = 0
        """Sessions ended early to keep a bound (not counting ``session_ttl``)."""

    def get(self, session_id: str) -> LiveSession | None:
        """The session with this id, if this server holds it."""
        return self.sessions.get(session_id)

    def __iter__(self) -> Iterator[LiveSession]:
        return iter(list(self.sessions.values()))

    def __len__(self) -> int:
        return len(self.sessions)

    @property
    def waiting(self) -> int:
        """Detached sessions: waiting for their client to resume."""
        return len(self._detached)

    # -- creating ---------------------------------------------------------------------------

    def create(self, session_id: str, user: str | None, epoch: str | None = None
               ) -> LiveSession | StreamError:
        """A new session, after making room for it; the error if there is none."""
        refusal = self._make_room(user)
        if refusal is not None:
            return refusal
        options = self.options
        history = BoundedHistory(options.history_max_messages, options.history_max_bytes)
        session = Session(session_id, user, datetime.now(UTC), history,
                          options.context_max_messages)
        if epoch is not None:
            session.epoch = epoch
        live = LiveSession(session, self.handler, self.protocol, options, self.events,
                           self.backplane)
        self.sessions[session_id] = live
        return live

    def _make_room(self, user: str | None) -> StreamError | None:
        limit, per_user = self.options.max_sessions, self.options.max_sessions_per_user
        if user is not None and per_user is not None:
            mine = [live for live in self.sessions.values() if live.session.user == user]
            if len(mine) >= per_user and not self._evict_oldest(user, "user"):
                return StreamError(
                    ErrorCode.TOO_MANY_CONNECTIONS,
                    f"user {user!r} holds {len(mine)} sessions "
                    f"(max_sessions_per_user={per_user})",
                    details={"limit": per_user, "scope": "user sessions", "user": user})
        if limit is not None and len(self.sessions) >= limit \
                and not self._evict_oldest(None, "sessions"):
            return StreamError(ErrorCode.TOO_MANY_CONNECTIONS,
                               f"the server holds its limit of {limit} sessions",
                               details={"limit": limit, "scope": "sessions"})
        return None

    def _evict_oldest(self, user: str | None, reason: str) -> bool:
        for live in self._detached.values():
            if user is None or live.session.user == user:
                self._evict(live, reason)
                return True
        return False

    def _evict(self, live: LiveSession, reason: str) -> None:
        logger.info("session %s ended early to stay within the %s bound", live.session.id,
                    reason, extra=live.session.log_fields)
        self.remove(live)
        self.evicted += reason != "ttl"
        if self._on_evict is not None:
            self._on_evict(reason)
        live.ending(1006, "session ended: its client did not come back in time")
        live.stop_soon()

    # -- attaching and detaching -----------------------------------------------------------

    def attached(self, live: LiveSession) -> None:
        """``live`` got a connection."""
        live.detached_at = None
        self._detached.pop(live.session.id, None)

    def detached(self, live: LiveSession, now: float) -> None:
        """``live`` lost its connection and waits for its client; enforce the byte bound."""
        live.detached_at = now
        self._detached.pop(live.session.id, None)
        self._detached[live.session.id] = live
        self._bound_bytes()

    def _bound_bytes(self) -> None:
        limit = self.options.max_detached_bytes
        if limit is None:
            return
        held = sum(live.session.history.total_bytes for live in self._detached.values())
        while held > limit and self._detached:
            oldest = next(iter(self._detached.values()))
            held -= oldest.session.history.total_bytes
            self._evict(oldest, "bytes")

    def expire(self, now: float) -> None:
        """End detached sessions whose ``session_ttl`` ran out; keep the byte bound."""
        ttl = self.options.session_ttl
        for live in list(self._detached.values()):
            if live.detached_at is not None and now - live.detached_at > ttl:
                self._evict(live, "ttl")
        self._bound_bytes()

    # -- resuming elsewhere and ending ------------------------------------------------------

    async def adopt(self, session_id: str, seen: Position | None) -> LiveSession | None:
        """Take over a session another server process held (its client came here).

        The shared history is written just after each send, so a client may have seen
        a few messages that the history lacks: it missed nothing then, and the session
        goes on after the client's position ``seen``.
        """
        record = await self.backplane.load(session_id)
        if record is None or session_id in self.sessions:
            return self.sessions.get(session_id)
        live = self.create(session_id, record.user, record.epoch)
        if isinstance(live, StreamError):
            return None
        frames, next_offset = record.frames, record.next_offset
        if seen is not None and seen.epoch == record.epoch and seen.offset >= next_offset:
            frames, next_offset = [], seen.offset + 1
        live.session.history.restore(frames, next_offset)
        logger.info("session %s resumed here from another process (%d messages kept)",
                    session_id, len(frames), extra=live.session.log_fields)
        return live

    def remove(self, live: LiveSession, *, forget: bool = True) -> None:
        """Drop ``live`` from the registry; ``forget`` also drops its shared history."""
        if self.sessions.get(live.session.id) is live:
            del self.sessions[live.session.id]
            self._detached.pop(live.session.id, None)
            if forget:
                self.backplane.forget(live.session.id)

    async def end(self, live: LiveSession, *, forget: bool = True) -> None:
        """End ``live``: drop it and stop what it was answering."""
        self.remove(live, forget=forget)
        await live.stop()

