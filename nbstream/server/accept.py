"""Letting a connection in: the HTTP side of the handshake, who the client is, whether
there is room for it, which session it gets, and what happens to that session when
the connection ends.

One connection's path: :meth:`Acceptor.process_request` (routes, session id,
credentials in the handshake) -> :meth:`Acceptor.handle`: credentials as a first
message if needed, admission, resume or takeover, welcome and replay, the receive
loop, then the detach that decides whether the session waits for its client.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from nbstream import wsinternals
from nbstream.backplane import Backplane, Claim, ClaimOutcome
from nbstream.backplane.handoff import LocalCopy, ResumeAction, decide, needs_claim
from nbstream.events import EventStream
from nbstream.protocol import (
    Admission,
    CloseCode,
    ErrorCode,
    MessageType,
    Position,
    StreamError,
    plan_resume,
)
from nbstream.protocol.closing import CloseCause, session_outlives
from nbstream.protocol.envelope import Message
from nbstream.protocol.ratelimit import UserBuckets
from nbstream.server.auth import Authenticator, token_from
from nbstream.server.connection import Connection
from nbstream.server.http import respond
from nbstream.server.live import LiveSession
from nbstream.server.metrics import ServerMetrics
from nbstream.server.options import ServerOptions
from nbstream.server.registry import SessionRegistry
from nbstream.wire import Encoded, WireProtocol

logger = logging.getLogger(__name__)

SESSION_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
"""What a client-chosen session id may look like."""

Route = Callable[[ServerConnection], Response]


class Acceptor:
    """Admits connections to one server and runs each until it ends."""

    def __init__(self, *, path: str, options: ServerOptions, protocol: WireProtocol,
                 registry: SessionRegistry, backplane: Backplane, events: EventStream,
                 metrics: ServerMetrics | None, routes: dict[str, Route],
                 stopping: Callable[[], bool]) -> None:
        self.path = path
        self.options = options
        self.protocol = protocol
        self.registry = registry
        self.backplane = backplane
        self.events = events
        self.metrics = metrics
        self.routes = routes
        self.admission = Admission(options.max_connections, options.max_connections_per_user)
        self.user_buckets = UserBuckets(options.rate_limit_per_user)
        self.connections: set[Connection] = set()
        """Every open connection, admitted or not yet (the tick visits them all)."""
        self.stopping = stopping
        self._auth = Authenticator(options.auth) if options.auth is not None else None
        self._identities: dict[ServerConnection, str] = {}

    # -- the HTTP side of the handshake -------------------------------------------------------

    async def process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        """Answer plain HTTP routes; refuse bad session ids and bad credentials."""
        parts = urlsplit(request.path)
        route = self.routes.get(parts.path)
        if route is not None:
            return route(ws)
        session_id = session_from_path(self.path, parts.path)
        if session_id is None:
            return respond(ws, 404, f"Not Found: the WebSocket endpoint is {self.path}\n")
        query = parse_qs(parts.query)
        session_id = session_id or first(query, "session_id") or ""
        if session_id and not SESSION_ID.fullmatch(session_id):
            return respond(ws, 400, "Bad Request: a session id is 1-128 characters of "
                                    "A-Z a-z 0-9 . _ ~ -\n")
        if self._auth is not None:
            token = token_from(request.headers, query)
            if token is None and not self.protocol.resumable:
                return respond(ws, 401, "Unauthorized: send a bearer token or ?token=\n")
            if token is not None:
                user = await self._auth.user_for(token)
                if user is None:
                    logger.info("refused a handshake with an invalid token")
                    return respond(ws, 401, "Unauthorized\n")
                self._identities[ws] = user
        return None

    # -- one connection -------------------------------------------------------------------------

    async def handle(self, ws: ServerConnection) -> None:
        """Run one connection from its handshake to its end."""
        assert ws.request is not None
        parts = urlsplit(ws.request.path)
        query = parse_qs(parts.query)
        presented = session_from_path(self.path, parts.path) or first(query, "session_id")
        conn = Connection(ws, self.protocol, presented or uuid.uuid4().hex, self.options,
                          self.events,
                          on_batch=self.metrics.observe_batch if self.metrics else None)
        self.connections.add(conn)
        try:
            await self._serve(conn, query, presented is not None)
        finally:
            self.connections.discard(conn)
            self._identities.pop(ws, None)
            await conn.finish()

    async def _serve(self, conn: Connection, query: dict[str, list[str]],
                     presented: bool) -> None:
        ws, session_id = conn.ws, conn.session_id
        if self.stopping():
            await conn.close(CloseCode.GOING_AWAY, "server shutting down", CloseCause.SHUTDOWN)
            return
        if self._auth is None:
            user = first(query, "user") or ws.request.headers.get("X-NBStream-User")  # type: ignore[union-attr]
            conn.core.accept()
        else:
            user = self._identities.pop(ws, None)
            if user is not None:
                conn.core.accept()
            else:
                user = await conn.authenticate(self._auth)
                if user is None:
                    self._emit_refused(conn, None, StreamError(
                        ErrorCode.UNAUTHORIZED, "valid credentials required"))
                    return
        conn.user = user
        refusal = self.admission.admit(user)
        if refusal is None and user is not None:
            # Every process's connections count: one atomic step in the shared store.
            refusal = await self.backplane.admit_user(
                user, ws.id.hex, self.admission.max_connections_per_user)
            if refusal is not None:
                self.admission.release(user)
        if refusal is not None:
            await self._refuse(conn, user, refusal)
            return
        last_id = first(query, "last_id")
        live, refusal, fresh = await self._session_for(session_id, presented, user, last_id)
        if refusal is not None:
            self._let_go(conn, user)
            await self._refuse(conn, user, refusal)
            return
        assert live is not None
        conn.limit_user(self.user_buckets.bucket(user, time.monotonic()))
        self._attach(conn, live, fresh, last_id)
        try:
            await conn.run()
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("connection of session %s failed", session_id,
                             extra=live.session.log_fields)
        finally:
            await self._detach(conn, live, user)

    async def _session_for(self, session_id: str, presented: bool, user: str | None,
                           last_id: str | None
                           ) -> tuple[LiveSession | None, StreamError | None, bool]:
        """The session this connection gets: (session, refusal, whether it is new).

        With a shared backplane, a session is current on whichever process holds it
        last: a copy here from an earlier visit gives way to the shared state
        (nbstream.backplane.handoff). A refusal changes nothing, here or elsewhere.
        """
        registry = self.registry
        live = registry.get(session_id)
        local = None if live is None else LocalCopy(live.session.user)
        claim = Claim(ClaimOutcome.UNKNOWN)
        if needs_claim(presented, self.backplane.shared, local, user):
            claim = await self.backplane.claim(session_id, user, have_local=live is not None)
            live = registry.get(session_id)  # it may have changed meanwhile
            local = None if live is None else LocalCopy(live.session.user)
        action = decide(local, claim, user)
        if action is ResumeAction.REFUSE:
            return None, StreamError(ErrorCode.UNAUTHORIZED,
                                     "this session belongs to another user"), False
        if action is ResumeAction.ADOPT:
            assert claim.record is not None
            if live is not None:
                registry.drop_copy(live)
            adopted = registry.adopt(claim.record, Position.parse(last_id))
            return (None, adopted, False) if isinstance(adopted, StreamError) else (
                adopted, None, False)
        if action is ResumeAction.KEEP and live is not None:
            if live.connection is not None:
                await live.connection.close(CloseCode.SESSION_TAKEN_OVER,
                                            "session taken over by a new connection",
                                            CloseCause.TAKEN_OVER, drain=0.0)
            return live, None, False
        created = registry.create(session_id, user)
        if isinstance(created, StreamError):
            return None, created, True
        return created, None, True

    def _let_go(self, conn: Connection, user: str | None) -> None:
        """Count an admitted connection out, here and in the shared store."""
        self.admission.release(user)
        if user is not None:
            self.backplane.leave(user, conn.ws.id.hex)

    # -- attach and detach -------------------------------------------------------------------

    def _attach(self, conn: Connection, live: LiveSession, fresh: bool,
                last_id: str | None) -> None:
        """Welcome, replay what the client missed, then go live; no await in between."""
        session, protocol = live.session, self.protocol
        conn.live = live
        recovered: bool | None = None
        reason = ""
        frames: list[bytes] = []
        if last_id is not None and protocol.resumable:
            position = Position.parse(last_id)
            if position is None:
                recovered, reason = False, f"{last_id!r} is not a position"
            elif fresh:
                recovered, reason = False, ("the server no longer has this session "
                                            "(expired, or the server restarted)")
            else:
                plan = plan_resume(session.history, session.epoch, position)
                recovered, reason, frames = plan.recovered, plan.reason, plan.frames
        if self.events:  # before the welcome: a timeline starts with its connection
            self.events.emit("open", "server", session.id, user=session.user,
                             detail={"resumed": last_id is not None, "recovered": recovered})
        if protocol.resumable and conn.ws.subprotocol == protocol.subprotocol:
            conn.send_control(Message(MessageType.WELCOME, {
                "session_id": session.id,
                "user": session.user,
                "epoch": session.epoch,
                "recovered": recovered,
                "replayed": len(frames),
                "reason": reason,
                "heartbeat_interval": self.options.heartbeat_interval,
                "heartbeat_timeout": self.options.heartbeat_timeout,
                "max_message_bytes": self.options.max_message_bytes,
                "batching": self.options.batching,
            }))
        for frame in frames:  # the history keeps nbstream envelopes: text frames
            conn.outbox.put(Encoded(frame, True))
        conn.outbox.flush()
        live.connection = conn
        self.registry.attached(live)
        live.start()
        logger.debug("session %s (user %r) connected", session.id, session.user,
                     extra=session.log_fields)

    async def _detach(self, conn: Connection, live: LiveSession, user: str | None) -> None:
        await conn.finish()
        self._let_go(conn, user)
        code = wsinternals.close_code(conn.ws)
        reason = conn.ws.close_reason or conn.close_reason
        if live.connection is conn:
            live.connection = None
            stopping = self.stopping()
            if stopping:
                # With a shared backplane the history stays: clients resume elsewhere.
                live.ending(code, reason)
                await self.registry.end(live, forget=not self.backplane.shared)
            elif self.protocol.resumable and session_outlives(code, conn.close_cause):
                self.registry.detached(live, time.monotonic())
            else:
                live.ending(code, reason)
                await self.registry.end(live)
        if self.events:
            self.events.emit("close", "server", live.session.id, user=user,
                             detail={"code": code, "reason": reason})
        logger.debug("session %s closed (%s)", live.session.id, code,
                     extra=live.session.log_fields)

    # -- refusing ------------------------------------------------------------------------------

    async def _refuse(self, conn: Connection, user: str | None, error: StreamError) -> None:
        """Send ``error`` and close with its close code (before any session exists)."""
        logger.info("refused a connection (user %r): %s", user, error,
                    extra={"session_id": conn.session_id, "user": user})
        self._emit_refused(conn, user, error)
        message = self.protocol.error_message(error)
        try:
            if message is not None:
                encoded = self.protocol.encode(message)
                await conn.ws.send(encoded.data, text=encoded.text)
            await conn.ws.close(error.close_code or CloseCode.POLICY_VIOLATION, error.code)
        except ConnectionClosed:
            pass

    def _emit_refused(self, conn: Connection, user: str | None, error: StreamError) -> None:
        """Views show a connection turned away before it opened as a ``refused`` row."""
        if self.events:
            code = error.close_code or int(CloseCode.POLICY_VIOLATION)
            self.events.emit("refused", "server", conn.session_id, user=user,
                             detail={"code": code, "error": str(error.code),
                                     "reason": error.message})


def session_from_path(endpoint: str, path: str) -> str | None:
    """'' for the endpoint itself, the id for ``endpoint/<id>``, None for other paths."""
    if path == endpoint or path == endpoint + "/":
        return ""
    if path.startswith(endpoint + "/"):
        rest = path[len(endpoint) + 1:]
        if rest and "/" not in rest:
            return rest
    return None


def first(query: dict[str, list[str]], key: str) -> str | None:
    """The first value of ``key`` in a parsed query string."""
    values = query.get(key)
    return values[0] if values else None
