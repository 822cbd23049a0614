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

from nbstream.backplane import Backplane, MemoryBackplane, SessionRecord
from nbstream.backplane.handoff import answered_chats, restore_point
from nbstream.events import EventStream
from nbstream.handlers import ResolvedHandler
from nbstream.protocol import (
    BoundedHistory,
    CloseCode,
    ErrorCode,
    Position,
    Session,
    StreamError,
)
from nbstream.protocol.closing import CloseCause
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

    @property
    def detached_bytes(self) -> int:
        """History bytes held for detached sessions."""
        return sum(live.session.history.total_bytes for live in self._detached.values())

    def _bound_bytes(self) -> None:
        limit = self.options.max_detached_bytes
        if limit is None:
            return
        held = self.detached_bytes
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

    def adopt(self, record: SessionRecord, seen: Position | None) -> LiveSession | StreamError:
        """Continue a session as another server process left it (its client came here).

        The shared history is written just after each send, so a client may have seen
        a few messages that it lacks: it missed nothing then, and the session goes on
        after the client's position ``seen``.
        """
        live = self.create(record.session_id, record.user, record.epoch)
        if isinstance(live, StreamError):
            return live
        frames, next_offset = restore_point(record, seen)
        live.session.history.restore(frames, next_offset)
        for request_id in answered_chats(frames):
            live.session.client_ids.add(request_id)
        for delivery in record.later:  # fan-out published while it changed hands
            live.push(delivery.message)
        logger.info("session %s resumed here from another process (%d messages kept)",
                    record.session_id, len(frames), extra=live.session.log_fields)
        return live

    def drop_copy(self, live: LiveSession) -> None:
        """Another process holds the session now: end this copy, keep the shared history."""
        self.remove(live, forget=False)
        live.backplane = MemoryBackplane()  # whatever the copy still does is not shared
        if live.connection is not None:
            live.connection.close_soon(CloseCode.SESSION_TAKEN_OVER,
                                       "session resumed on another server",
                                       CloseCause.TAKEN_OVER)
        live.stop_soon()

    def release(self, session_id: str) -> None:
        """The backplane says another process took ``session_id`` over."""
        live = self.sessions.get(session_id)
        if live is not None:
            self.drop_copy(live)

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

